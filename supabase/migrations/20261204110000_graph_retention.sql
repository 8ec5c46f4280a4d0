-- graph_retention: a purge reaches the point-in-time snapshots (analytics_asof_<label>), and
-- LangGraph threads' checkpoints can be pruned to the last K (GraphCheckpointsPruned).

CREATE OR REPLACE FUNCTION chronicle.project_graph(e chronicle.events)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
    when 'GraphThreadDeleted' then
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.prune_graph_checkpoints(p_graph uuid, p_ns text, p_through text)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_session_snapshots(p_session_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'session-' || p_session_id::text;
  r chronicle.projection_runs;
  t record;
  e chronicle.events;
  v_count integer := 0;
  v_through bigint;
begin
  -- A build in progress is locked (its batches lock the run too), so none applies events
  -- between the rows going and their being made again.
  for r in select * from chronicle.projection_runs x
            where ((x.kind = 'snapshot' and x.state = 'completed') or x.state in ('running', 'cancelling'))
              and to_regnamespace(x.target_schema) is not null
            order by x.started_at
            for update loop
    for t in select c.relname::text as relname,
                    exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and a.attname = 'session_id' and not a.attisdropped) as keyed
               from pg_class c
              where c.relnamespace = to_regnamespace(r.target_schema) and c.relkind in ('r', 'p') loop
      if t.relname = 'sessions' then
        execute format('delete from %I.sessions where id = $1', r.target_schema) using p_session_id;
      elsif t.keyed then
        execute format('delete from %I.%I where session_id = $1', r.target_schema, t.relname) using p_session_id;
      end if;
    end loop;
    -- The events the build holds: up to a completed snapshot's bound, or as far as a build in
    -- progress got (the rest it applies from the redacted log).
    v_through := case when r.state = 'completed' then r.bound_seq else r.cursor_seq end;
    if 'sessions' = any (r.projections) and v_through is not null then
      -- As a build applies events: the handler's unqualified tables are the build's.
      perform set_config('search_path', r.target_schema, true);
      for e in select x.* from chronicle.events x
                 join chronicle.event_seq q on q.global_position = x.global_position
                where x.stream_id = v_stream and q.seq <= v_through
                order by x.stream_version loop
        perform chronicle.project_session(e);
      end loop;
      perform set_config('search_path', 'pg_catalog, chronicle, pg_temp', true);
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_session_stream(p_session_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'session-' || p_session_id::text;
  v_count integer;
  e chronicle.events;
begin
  perform set_config('chronicle.redacting', pg_current_xact_id()::text, true);
  update chronicle.events x
     set data = chronicle.redact_event_data(x.type, x.data),
         metadata = x.metadata - 'idempotencyKey' - 'fingerprint'
   where x.stream_id = v_stream;
  get diagnostics v_count = row_count;
  perform set_config('chronicle.redacting', '', true);

  delete from messages where session_id = p_session_id;
  delete from revisions where session_id = p_session_id;
  delete from drafts where session_id = p_session_id;
  delete from hole_resolutions where session_id = p_session_id;
  delete from session_files where session_id = p_session_id;
  delete from session_file_detachments where session_id = p_session_id;
  delete from tool_runs where session_id = p_session_id;
  delete from checkpoints where session_id = p_session_id;
  delete from session_rollbacks where session_id = p_session_id;
  delete from session_updates where session_id = p_session_id;
  delete from sessions where id = p_session_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_session(e);
  end loop;
  perform chronicle.purge_session_snapshots(p_session_id);
  return v_count;
end
$function$;

revoke all on function chronicle.purge_session_snapshots(uuid) from public;
revoke all on function chronicle.prune_graph_checkpoints(uuid, text, text) from public;
grant execute on function chronicle.prune_graph_checkpoints(uuid, text, text) to chronicle_runtime;
