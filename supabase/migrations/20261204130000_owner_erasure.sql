-- owner_erasure: an owner's erasure reaches their LangGraph threads (purge_graph_stream,
-- GraphThreadPurged), jobs (purge_job_stream, JobPurged) and sandboxes (purge_sandbox_stream,
-- SandboxPurged); it reaches the snapshots and builds in progress for them and for stored
-- files too (purge_stream_snapshots); the runtime role may call the first three.

CREATE OR REPLACE FUNCTION chronicle.apply_runtime_privileges()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  t text;
begin
  if not exists (select 1 from pg_roles where rolname = 'chronicle_runtime') then
    begin
      create role chronicle_runtime nologin;
    exception
      -- Another database of the server (or a concurrent migration) made it meanwhile.
      when duplicate_object or unique_violation then null;
    end;
  end if;

  revoke execute on all functions in schema chronicle from public;
  -- Functions added by later migrations are not PUBLIC's either.
  alter default privileges in schema chronicle revoke execute on functions from public;

  grant usage on schema chronicle to chronicle_runtime;
  grant select on all tables in schema chronicle to chronicle_runtime;
  -- Tables made later (by a migration, a rebuild's swap, a snapshot) are readable too.
  alter default privileges grant select on tables to chronicle_runtime;
  alter default privileges grant usage on schemas to chronicle_runtime;
  -- Blobs: written by files and large values; deleted only by a purge, once nothing names them.
  grant insert, delete on chronicle.blobs to chronicle_runtime;
  grant update (lease_owner, lease_expires_at) on chronicle.sequencer to chronicle_runtime;
  grant update on chronicle.projections to chronicle_runtime;
  grant insert, update on chronicle.projection_runs to chronicle_runtime;

  grant execute on function
    chronicle.append_events(text, text, integer, jsonb, uuid),
    chronicle.append_group(jsonb),
    chronicle.sequence_events(integer, text),
    chronicle.sequencer_pending(),
    chronicle.system_identifier(),
    chronicle.stream_uuid(text),
    chronicle.event_cursor(chronicle.events),
    chronicle.effective_versions(uuid, integer),
    chronicle.attached_files(uuid, int4multirange),
    chronicle.rm_effective_versions(uuid, integer),
    chronicle.rm_attached_files(uuid, int4multirange),
    chronicle.prepare_projection_build(uuid, text, bigint),
    chronicle.projection_build_batch(uuid, text, bigint, integer),
    chronicle.finish_projection_rebuild(uuid, text, bigint, integer, integer),
    chronicle.fail_projection_run(uuid, text, bigint, text),
    chronicle.projection_retry_at(text, double precision, double precision),
    chronicle.finish_projection_snapshot(uuid, text, bigint),
    chronicle.projection_async_batch(text, text, integer, integer),
    chronicle.projection_table_rows(text[], bigint),
    chronicle.projection_tables_exist(text[]),
    chronicle.projection_tables_mismatch(text, text[]),
    chronicle.drop_projection_schema(uuid),
    chronicle.rebuild_read_models(),
    chronicle.graph_value(uuid, text, text, text),
    chronicle.graph_inline(text, text, text),
    -- Erasure (the Purge service: the retention sweep and `chronicle purge`), audited in the log.
    chronicle.purge_session_stream(uuid),
    chronicle.purge_file_stream(uuid),
    chronicle.purge_job_stream(uuid),
    chronicle.purge_graph_stream(uuid),
    chronicle.purge_sandbox_stream(uuid),
    -- Retention of LangGraph checkpoints (the same Purge service), audited by GraphCheckpointsPruned.
    chronicle.prune_graph_checkpoints(uuid, text, text)
    to chronicle_runtime;

  -- Where row-level security is on (Supabase), the service's role reads every row: the API
  -- checks ownership itself, as service_role would.
  for t in select c.relname from pg_class c
            where c.relnamespace = 'chronicle'::regnamespace and c.relkind in ('r', 'p') and c.relrowsecurity
              and not exists (select 1 from pg_policy p where p.polrelid = c.oid and p.polname = c.relname || '_service')
            order by c.relname loop
    execute format('create policy %I on chronicle.%I to chronicle_runtime using (true) with check (true)',
                   t || '_service', t);
  end loop;
end
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_file_stream(p_file_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'file-' || p_file_id::text;
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
  delete from files where id = p_file_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_file(e);
  end loop;
  perform chronicle.purge_stream_snapshots('file', p_file_id);
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_graph_stream(p_graph uuid)
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
  update chronicle.events x
     set data = case x.type
                  when 'GraphCheckpointSaved' then x.data || jsonb_build_object(
                    'checkpoint', jsonb_build_object('type', x.data -> 'checkpoint' ->> 'type', 'data', ''),
                    'metadata', '{}'::jsonb,
                    'blobs', '[]'::jsonb)
                  when 'GraphWritesSaved' then x.data || '{"writes": []}'::jsonb
                  when 'GraphThreadPurged' then x.data || '{"reason": null}'::jsonb
                  else x.data end,
         metadata = x.metadata - 'idempotencyKey' - 'fingerprint'
   where x.stream_id = v_stream;
  get diagnostics v_count = row_count;
  perform set_config('chronicle.redacting', '', true);
  delete from chronicle.graph_checkpoints where graph_id = p_graph;
  delete from chronicle.graph_blobs where graph_id = p_graph;
  delete from chronicle.graph_writes where graph_id = p_graph;
  -- Snapshots and builds in progress hold the thread as the redacted log makes it.
  perform chronicle.purge_stream_snapshots('graph', p_graph);
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_job_stream(p_job_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'job-' || p_job_id::text;
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
  delete from tasks where job_id = p_job_id;
  delete from artifacts where job_id = p_job_id;
  delete from jobs where id = p_job_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_job(e);
  end loop;
  perform chronicle.purge_stream_snapshots('job', p_job_id);
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_sandbox_stream(p_sandbox_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'sandbox-' || p_sandbox_id::text;
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
  delete from sandboxes where id = p_sandbox_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_sandbox(e);
  end loop;
  perform chronicle.purge_stream_snapshots('sandbox', p_sandbox_id);
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_stream_snapshots(p_category text, p_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := p_category || '-' || p_id::text;
  v_root text := case p_category when 'job' then 'jobs' when 'graph' then 'graph_threads' when 'file' then 'files'
                                 when 'sandbox' then 'sandboxes' end;
  -- A file's rows are its own only (an attachment's or artifact's row belongs to its session or job).
  v_key text := case p_category when 'job' then 'job_id' when 'graph' then 'graph_id' end;
  v_projection text := case p_category when 'job' then 'jobs' when 'graph' then 'graph' when 'file' then 'files'
                                       when 'sandbox' then 'sandboxes' end;
  r chronicle.projection_runs;
  t record;
  e chronicle.events;
  v_count integer := 0;
  v_through bigint;
begin
  if v_root is null then
    raise exception 'purge_stream_snapshots: no snapshots to purge for streams of category %', p_category;
  end if;
  for r in select * from chronicle.projection_runs x
            where ((x.kind = 'snapshot' and x.state = 'completed') or x.state in ('running', 'cancelling'))
              and to_regnamespace(x.target_schema) is not null
            order by x.started_at
            for update loop
    for t in select c.relname::text as relname,
                    exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and v_key is not null and a.attname = v_key
                               and not a.attisdropped) as keyed
               from pg_class c
              where c.relnamespace = to_regnamespace(r.target_schema) and c.relkind in ('r', 'p') loop
      if t.relname = v_root then
        execute format('delete from %I.%I where id = $1', r.target_schema, t.relname) using p_id;
      elsif t.keyed then
        execute format('delete from %I.%I where %I = $1', r.target_schema, t.relname, v_key) using p_id;
      end if;
    end loop;
    v_through := case when r.state = 'completed' then r.bound_seq else r.cursor_seq end;
    if v_projection = any (r.projections) and v_through is not null then
      perform set_config('search_path', r.target_schema, true);
      for e in select x.* from chronicle.events x
                 join chronicle.event_seq q on q.global_position = x.global_position
                where x.stream_id = v_stream and q.seq <= v_through
                order by x.stream_version loop
        case p_category
          when 'job' then perform chronicle.project_job(e);
          when 'graph' then perform chronicle.project_graph(e);
          when 'sandbox' then perform chronicle.project_sandbox(e);
          else perform chronicle.project_file(e);
        end case;
      end loop;
      perform set_config('search_path', 'pg_catalog, chronicle, pg_temp', true);
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.redact_event_data(p_type text, p_data jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select p_data || coalesce(
    (select jsonb_object_agg(b.key, b.value)
       from jsonb_each(case p_type
              when 'SessionStarted' then '{"title": null, "metadata": {}, "externalKey": null}'
              when 'SessionForked' then '{"title": null, "metadata": {}, "externalKey": null}'
              when 'SessionUpdated' then '{"title": null, "metadata": {}}'
              when 'SessionArchived' then '{"reason": null}'
              when 'SessionDeleted' then '{"reason": null}'
              when 'SessionPurged' then '{"reason": null}'
              when 'MessageAppended' then '{"content": "", "metadata": {}}'
              when 'RevisionAdded' then '{"ir": null, "note": null}'
              when 'DraftRecorded' then '{"code": "", "metrics": {}}'
              when 'HoleResolved' then '{"value": null}'
              when 'FileAttached' then '{"name": "redacted"}'
              when 'ToolRunRecorded' then '{"input": null, "output": null, "error": null}'
              when 'CheckpointCreated' then '{"label": null}'
              when 'FileUploaded' then '{"name": "redacted"}'
              when 'FilePurged' then '{"reason": null}'
              when 'JobCreated' then '{"input": null}'
              when 'JobProgressed' then '{"message": null}'
              when 'JobPaused' then '{"reason": null}'
              when 'JobCompleted' then '{"output": null}'
              when 'JobFailed' then '{"error": "redacted", "details": null}'
              when 'JobCancelled' then '{"reason": null}'
              when 'TaskAdded' then '{"input": null}'
              when 'TaskUpdated' then '{"output": null, "error": null}'
              when 'ArtifactRecorded' then '{"name": "redacted"}'
              when 'JobPurged' then '{"reason": null}'
              when 'SandboxRegistered' then '{"metadata": {}, "url": null}'
              when 'SandboxStatusChanged' then '{"reason": null, "url": null}'
              when 'SandboxPurged' then '{"reason": null}'
              else '{}' end::jsonb) as b
      where p_data ? b.key),
    '{}'::jsonb)
$function$;

revoke all on function chronicle.purge_graph_stream(uuid) from public;
revoke all on function chronicle.purge_job_stream(uuid) from public;
revoke all on function chronicle.purge_sandbox_stream(uuid) from public;
revoke all on function chronicle.purge_stream_snapshots(text, uuid) from public;
select chronicle.apply_runtime_privileges();
