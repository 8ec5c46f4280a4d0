-- Linear storage for graph threads (supabase/schemas/04_graphs.sql): a list channel's value
-- is stored as the items it added on top of the version it grew from (base_version, keep,
-- items, length), assembled on read by chronicle.graph_value; a value too large for an event
-- lives in chronicle.blobs under its sha256 (graph_blobs.sha256, graph_writes.sha256).
-- Rows written before keep their whole values (type, data) and read as they did.

alter table chronicle.graph_blobs
  alter column type drop not null,
  alter column data drop not null,
  add column sha256 text,
  add column base_version text,
  add column keep integer,
  add column items jsonb,
  add column length integer,
  add constraint graph_blobs_whole_or_list check ((type is null) = (items is not null));

alter table chronicle.graph_writes
  alter column data drop not null,
  add column sha256 text;

CREATE OR REPLACE FUNCTION chronicle.graph_inline(p_type text, p_data text, p_sha256 text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  select jsonb_build_object('type', p_type, 'data', coalesce(p_data,
           (select translate(encode(b.content, 'base64'), E'\n', '') from chronicle.blobs b
             where b.sha256 = p_sha256), ''))
$function$;

CREATE OR REPLACE FUNCTION chronicle.graph_value(p_graph uuid, p_ns text, p_channel text, p_version text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_graph(e chronicle.events)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
  v_owner uuid;
  v_thread text;
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
    else
      null; -- a type with no read model only advanced the thread's version
  end case;
end
$function$;
