-- Chronicle schema, area 4 of 7: agent-graph threads (LangGraph checkpoints) as events, and
-- their read model.
--
-- A thread is the stream 'graph-<uuid>', the uuid derived from (owner, thread id). Its events
-- (packages/events/src/graph.ts): GraphThreadStarted, GraphCheckpointSaved, GraphWritesSaved,
-- GraphThreadDeleted, GraphCheckpointsPruned, GraphThreadPurged. Values the graph framework serialized travel as { type, data: base64 }
-- and are kept as such: the service never interprets them. A value too large for an event
-- travels as { type, sha256, size }, its bytes in chronicle.blobs (content-addressed, written
-- directly, as files' bytes are).
--
-- Storage grows with what a thread adds: a channel's value is stored once per version, and a
-- list channel (messages) is stored as the items it added on top of the version it grew from;
-- chronicle.graph_value assembles a list from that chain when a checkpoint is read.
--
-- The handler writes unqualified table names: the projection engine points search_path at
-- chronicle for live projection and at a shadow schema during a rebuild.

create table chronicle.graph_threads (
  id          uuid primary key,
  owner_id    uuid not null,
  thread_id   text not null,
  version     integer not null,
  -- How many times the thread was deleted; its rows before the last deletion are gone.
  deletions   integer not null default 0,
  created_at  timestamptz not null,
  updated_at  timestamptz not null
);

create unique index graph_threads_owner_thread_idx on chronicle.graph_threads (owner_id, thread_id);

create table chronicle.graph_checkpoints (
  graph_id             uuid not null,
  checkpoint_ns        text not null,
  checkpoint_id        text collate "C" not null,
  owner_id             uuid not null,
  thread_id            text not null,
  parent_checkpoint_id text,
  checkpoint_type      text not null,
  checkpoint           text not null,
  metadata             jsonb not null,
  channel_versions     jsonb not null,
  -- The stream version of the event that saved it.
  version              integer not null,
  created_at           timestamptz not null,
  primary key (graph_id, checkpoint_ns, checkpoint_id)
);

-- list() without a thread: an owner's checkpoints, newest id first.
create index graph_checkpoints_owner_idx on chronicle.graph_checkpoints (owner_id, checkpoint_id desc);

create table chronicle.graph_blobs (
  graph_id      uuid not null,
  checkpoint_ns text not null,
  channel       text not null,
  version       text not null,
  -- A whole value: its serializer's type tag and its bytes, inline (base64 in data) or in
  -- chronicle.blobs (sha256). Type 'empty': the channel has no value at this version.
  type          text,
  data          text,
  sha256        text,
  -- A list, its items serialized one by one: the first `keep` items of the list stored under
  -- base_version (null: none), then `items` ([{type, data} | {type, sha256, size}]);
  -- `length` counts them all.
  base_version  text,
  keep          integer,
  items         jsonb,
  length        integer,
  primary key (graph_id, checkpoint_ns, channel, version),
  constraint graph_blobs_whole_or_list check ((type is null) = (items is not null))
);

create table chronicle.graph_writes (
  graph_id      uuid not null,
  checkpoint_ns text not null,
  checkpoint_id text not null,
  task_id       text not null,
  idx           integer not null,
  task_path     text not null,
  channel       text not null,
  -- The value: its type tag and its bytes, inline (base64 in data) or in chronicle.blobs (sha256).
  type          text not null,
  data          text,
  version       integer not null,
  sha256        text,
  primary key (graph_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

do $$
declare
  r text;
  t text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      foreach t in array array['graph_threads', 'graph_checkpoints', 'graph_blobs', 'graph_writes'] loop
        execute format('revoke insert, update, delete, truncate on chronicle.%I from %I', t, r);
      end loop;
    end if;
  end loop;
end
$$;

-- Folds one event of a graph-<uuid> stream into the tables above. Idempotent per event: a
-- rebuild replays the log through it and reproduces the same rows.
create function chronicle.project_graph(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
  v_owner uuid;
  v_thread text;
  v_ns text := d ->> 'checkpointNs';
  v_through text := d ->> 'throughCheckpointId';
  r record;
begin
  if e.type = 'GraphThreadStarted' then
    insert into graph_threads (id, owner_id, thread_id, version, created_at, updated_at)
    values (v_id, (d ->> 'ownerId')::uuid, d ->> 'threadId', e.stream_version, e.recorded_at, e.recorded_at)
    on conflict (id) do nothing;
    return;
  end if;

  update graph_threads t
     set version = e.stream_version,
         updated_at = e.recorded_at,
         deletions = t.deletions + (case when e.type = 'GraphThreadDeleted' then 1 else 0 end)
   where t.id = v_id
  returning t.owner_id, t.thread_id into v_owner, v_thread;
  if v_owner is null then
    return; -- a stream that did not start with GraphThreadStarted has no read model
  end if;

  case e.type
    when 'GraphCheckpointSaved' then
      insert into graph_checkpoints
        (graph_id, checkpoint_ns, checkpoint_id, owner_id, thread_id, parent_checkpoint_id, checkpoint_type,
         checkpoint, metadata, channel_versions, version, created_at)
      values (v_id, d ->> 'checkpointNs', d ->> 'checkpointId', v_owner, v_thread, d ->> 'parentCheckpointId',
              d -> 'checkpoint' ->> 'type', d -> 'checkpoint' ->> 'data', d -> 'metadata', d -> 'channelVersions',
              e.stream_version, e.recorded_at)
      on conflict (graph_id, checkpoint_ns, checkpoint_id) do update
        set parent_checkpoint_id = excluded.parent_checkpoint_id,
            checkpoint_type = excluded.checkpoint_type,
            checkpoint = excluded.checkpoint,
            metadata = excluded.metadata,
            channel_versions = excluded.channel_versions,
            version = excluded.version;
      -- A channel's value at a version never changes: the first one stored stays. A list keeps
      -- the items of its base only when the thread holds that base as a list (as the service
      -- checks before it appends), and at most all of them: every list rests on one stored
      -- before it, so the chains graph_value walks are finite and their lengths exact.
      insert into graph_blobs
        (graph_id, checkpoint_ns, channel, version, type, data, sha256, base_version, keep, items, length)
      select v_id, d ->> 'checkpointNs', b ->> 'channel', b ->> 'version', b -> 'value' ->> 'type',
             b -> 'value' ->> 'data', b -> 'value' ->> 'sha256', base.version, l.keep, b -> 'list' -> 'items',
             l.keep + jsonb_array_length(b -> 'list' -> 'items')
        from jsonb_array_elements(d -> 'blobs') b
        left join graph_blobs base
          on base.graph_id = v_id and base.checkpoint_ns = d ->> 'checkpointNs' and base.channel = b ->> 'channel'
         and base.version = b -> 'list' ->> 'base' and base.items is not null
        cross join lateral (
          select case when not b ? 'list' then null
                      when base.version is null then 0
                      else least((b -> 'list' ->> 'keep')::integer, base.length) end
        ) l (keep)
      on conflict do nothing;
    when 'GraphWritesSaved' then
      insert into graph_writes
        (graph_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, data, sha256, version)
      select v_id, d ->> 'checkpointNs', d ->> 'checkpointId', d ->> 'taskId', (w ->> 'idx')::integer,
             d ->> 'taskPath', w ->> 'channel', w -> 'value' ->> 'type', w -> 'value' ->> 'data',
             w -> 'value' ->> 'sha256', e.stream_version
        from jsonb_array_elements(d -> 'writes') w
      -- A regular write is stored once; a special one (error, interrupt, resume…) replaces its predecessor.
      on conflict (graph_id, checkpoint_ns, checkpoint_id, task_id, idx) do update
        set task_path = excluded.task_path,
            channel = excluded.channel,
            type = excluded.type,
            data = excluded.data,
            sha256 = excluded.sha256,
            version = excluded.version
        where excluded.idx < 0;
    when 'GraphThreadDeleted', 'GraphThreadPurged' then
      -- A purge (chronicle.purge_graph_stream) empties the thread as a deletion does.
      delete from graph_checkpoints where graph_id = v_id;
      delete from graph_blobs where graph_id = v_id;
      delete from graph_writes where graph_id = v_id;
    when 'GraphCheckpointsPruned' then
      -- Retention (chronicle.prune_graph_checkpoints): the namespace's checkpoints up to the id
      -- go with their writes, and so does every value no remaining checkpoint names. A list a
      -- remaining checkpoint names whose base is about to go is first stored whole (its items
      -- assembled from its chain, as graph_value does, keeping what the events carried: inline
      -- bytes or a SHA-256): it then rests on nothing, and reads as before.
      delete from graph_checkpoints c
       where c.graph_id = v_id and c.checkpoint_ns = v_ns and c.checkpoint_id <= v_through;
      delete from graph_writes w
       where w.graph_id = v_id and w.checkpoint_ns = v_ns and w.checkpoint_id collate "C" <= v_through;
      for r in
        select b.channel, b.version from graph_blobs b
         where b.graph_id = v_id and b.checkpoint_ns = v_ns and b.items is not null and b.base_version is not null
           and exists (select 1 from graph_checkpoints c
                        where c.graph_id = v_id and c.checkpoint_ns = v_ns and c.channel_versions ->> b.channel = b.version)
           and not exists (select 1 from graph_checkpoints c
                            where c.graph_id = v_id and c.checkpoint_ns = v_ns
                              and c.channel_versions ->> b.channel = b.base_version)
      loop
        update graph_blobs b
           set items = (
                 with recursive chain (depth, version, need) as (
                   select 0, x.version, x.length
                     from graph_blobs x
                    where x.graph_id = v_id and x.checkpoint_ns = v_ns and x.channel = r.channel and x.version = r.version
                   union all
                   select c.depth + 1, x.base_version, least(c.need, x.keep)
                     from chain c
                     join graph_blobs x
                       on x.graph_id = v_id and x.checkpoint_ns = v_ns and x.channel = r.channel and x.version = c.version
                    where x.base_version is not null and least(c.need, x.keep) > 0
                 )
                 select coalesce(jsonb_agg(i.item order by c.depth desc, i.n), '[]'::jsonb)
                   from chain c
                   join graph_blobs x
                     on x.graph_id = v_id and x.checkpoint_ns = v_ns and x.channel = r.channel and x.version = c.version
                  cross join lateral jsonb_array_elements(x.items) with ordinality i (item, n)
                  where i.n <= c.need - x.keep),
               base_version = null,
               keep = 0
         where b.graph_id = v_id and b.checkpoint_ns = v_ns and b.channel = r.channel and b.version = r.version;
      end loop;
      delete from graph_blobs b
       where b.graph_id = v_id and b.checkpoint_ns = v_ns
         and not exists (select 1 from graph_checkpoints c
                          where c.graph_id = v_id and c.checkpoint_ns = v_ns and c.channel_versions ->> b.channel = b.version);
    else
      null; -- a type with no read model only advanced the thread's version
  end case;
end
$$;

-- A stored value as reads return it: { type, data } with its bytes inline, fetched from
-- chronicle.blobs when the event carried their sha256.
create function chronicle.graph_inline(p_type text, p_data text, p_sha256 text) returns jsonb
language sql stable as $$
  select jsonb_build_object('type', p_type, 'data', coalesce(p_data,
           (select translate(encode(b.content, 'base64'), E'\n', '') from chronicle.blobs b
             where b.sha256 = p_sha256), ''))
$$;

-- One channel's value at one version, as reads return it: { "value": { type, data } } for a
-- whole value, { "items": [{ type, data }, …] } for a list, assembled from the chain of versions
-- it grew from (each contributes the items it added that the later ones kept); null when the
-- thread stores none.
create function chronicle.graph_value(p_graph uuid, p_ns text, p_channel text, p_version text) returns jsonb
language sql stable as $$
  with recursive chain (depth, version, need) as (
    select 0, b.version, b.length
      from chronicle.graph_blobs b
     where b.graph_id = p_graph and b.checkpoint_ns = p_ns and b.channel = p_channel
       and b.version = p_version and b.items is not null
    union all
    select c.depth + 1, b.base_version, least(c.need, b.keep)
      from chain c
      join chronicle.graph_blobs b
        on b.graph_id = p_graph and b.checkpoint_ns = p_ns and b.channel = p_channel and b.version = c.version
     where b.base_version is not null and least(c.need, b.keep) > 0
  )
  select jsonb_build_object('value', chronicle.graph_inline(b.type, b.data, b.sha256))
    from chronicle.graph_blobs b
   where b.graph_id = p_graph and b.checkpoint_ns = p_ns and b.channel = p_channel
     and b.version = p_version and b.items is null
  union all
  select jsonb_build_object('items', coalesce(jsonb_agg(
           chronicle.graph_inline(i.item ->> 'type', i.item ->> 'data', i.item ->> 'sha256')
           order by c.depth desc, i.n), '[]'::jsonb))
    from chain c
    join chronicle.graph_blobs b
      on b.graph_id = p_graph and b.checkpoint_ns = p_ns and b.channel = p_channel and b.version = c.version
    cross join lateral jsonb_array_elements(b.items) with ordinality i (item, n)
   where i.n <= c.need - b.keep
  having count(*) > 0 or exists (select 1 from chain)
$$;

-- The large values (contents in the blob store) the checkpoints and writes of a thread's
-- namespace up to p_through name: what the retention gathers before
-- chronicle.prune_graph_checkpoints redacts them, to delete afterwards what nothing else
-- references (chronicle.delete_unreferenced_blobs).
create function chronicle.graph_checkpoint_hashes(p_graph uuid, p_ns text, p_through text) returns setof text
language sql stable security definer set search_path = pg_catalog, chronicle, pg_temp as $$
  select distinct h.sha256
    from chronicle.events e, chronicle.payload_hashes(e.data) as h(sha256)
   where e.stream_id = 'graph-' || p_graph::text and e.type in ('GraphCheckpointSaved', 'GraphWritesSaved')
     and e.data ->> 'checkpointNs' = p_ns and (e.data ->> 'checkpointId') collate "C" <= p_through
$$;

-- Retention: prunes a thread's checkpoints of one namespace whose id sorts at or before
-- p_through (all but the last ones), through the one privileged path that may change an event
-- (see chronicle.reject_event_mutation). Their events keep their ids, types, versions, seqs and
-- times; their payloads are redacted: the checkpoint's bytes and metadata blanked, the writes
-- made against it dropped, and of the values it carried only those kept: the ones a remaining
-- checkpoint names, and every version a list among them grew from, as the events recorded it
-- (a replay needs the chain to assemble the list; the read model then keeps only its oldest
-- named version, whole). Its channel versions stay: an earlier pruning, replayed, must see the
-- checkpoints it kept name what they named, or it would drop a value a list saved after it
-- grew from. Returns the number of events redacted. The caller appends GraphCheckpointsPruned
-- in the same transaction, whose projection removes the checkpoints, writes and values from
-- the read model, so a replay of the redacted log makes the same rows. For the service, never
-- the API roles.
create function chronicle.prune_graph_checkpoints(p_graph uuid, p_ns text, p_through text) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
declare
  v_stream text := 'graph-' || p_graph::text;
  v_count integer;
begin
  perform set_config('chronicle.redacting', pg_current_xact_id()::text, true);
  with recursive
    -- Every (channel, version) → base the thread's events stored in the namespace.
    stored (channel, version, base) as (
      select distinct b ->> 'channel', b ->> 'version', b -> 'list' ->> 'base'
        from chronicle.events x, jsonb_array_elements(x.data -> 'blobs') b
       where x.stream_id = v_stream and x.type = 'GraphCheckpointSaved' and x.data ->> 'checkpointNs' = p_ns),
    needed (channel, version) as (
      select v.key, v.value
        from chronicle.graph_checkpoints c, jsonb_each_text(c.channel_versions) v
       where c.graph_id = p_graph and c.checkpoint_ns = p_ns and c.checkpoint_id > p_through
      union
      select s.channel, s.base
        from needed n join stored s on s.channel = n.channel and s.version = n.version
       where s.base is not null)
  update chronicle.events x
     set data = case x.type
                  when 'GraphCheckpointSaved' then x.data || jsonb_build_object(
                    'checkpoint', jsonb_build_object('type', x.data -> 'checkpoint' ->> 'type', 'data', ''),
                    'metadata', '{}'::jsonb,
                    'blobs', coalesce((select jsonb_agg(b.value order by b.n)
                                         from jsonb_array_elements(x.data -> 'blobs') with ordinality b (value, n)
                                        where exists (select 1 from needed k
                                                       where k.channel = b.value ->> 'channel'
                                                         and k.version = b.value ->> 'version')), '[]'::jsonb))
                  else x.data || '{"writes": []}'::jsonb end,
         metadata = x.metadata - 'idempotencyKey' - 'fingerprint'
   where x.stream_id = v_stream and x.type in ('GraphCheckpointSaved', 'GraphWritesSaved')
     and x.data ->> 'checkpointNs' = p_ns and (x.data ->> 'checkpointId') collate "C" <= p_through;
  get diagnostics v_count = row_count;
  perform set_config('chronicle.redacting', '', true);
  return v_count;
end
$$;

revoke all on function chronicle.prune_graph_checkpoints(uuid, text, text) from public;

-- Erasure of a thread (an owner's erasure), through the one privileged path that may change an
-- event (chronicle.redact_stream, 03_read_models.sql): every checkpoint of its stream is blanked
-- (its bytes and metadata; ids, parents and channel versions kept), every channel value and
-- write dropped, and the thread's checkpoints, values and writes leave the read model. Returns the
-- number of events redacted (the stream's version). The caller gathers the large values'
-- hashes first, records GraphThreadPurged in the same transaction (whose projection empties
-- the thread, so a replay of the redacted log makes the same rows) and deletes the bytes
-- nothing else references. For the service, never the API roles.
create function chronicle.purge_graph_stream(p_graph uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
declare
  v_stream text := 'graph-' || p_graph::text;
  v_count integer;
begin
  v_count := chronicle.redact_stream(v_stream);
  delete from chronicle.graph_checkpoints where graph_id = p_graph;
  delete from chronicle.graph_blobs where graph_id = p_graph;
  delete from chronicle.graph_writes where graph_id = p_graph;
  -- Snapshots and builds in progress hold the thread as the redacted log makes it.
  perform chronicle.purge_stream_snapshots('graph', p_graph);
  return v_count;
end
$$;

revoke all on function chronicle.purge_graph_stream(uuid) from public;

select chronicle.register_projection(
  p_name => 'graph',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_graph',
  p_tables => array['graph_threads', 'graph_checkpoints', 'graph_blobs', 'graph_writes'],
  p_stream_categories => array['graph'],
  p_description => 'LangGraph threads: checkpoints, channel values and pending writes, per owner and thread'
);
