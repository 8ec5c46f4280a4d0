-- purge_helpers: the purge functions share one redaction, chronicle.redact_stream (never the
-- runtime role's to call), which also blanks LangGraph checkpoints (chronicle.redact_event_data);
-- what the Purge service asked of the log it now asks of functions the runtime role may call:
-- chronicle.stream_purged_since, chronicle.stream_blob_hashes, chronicle.graph_checkpoint_hashes
-- and chronicle.delete_unreferenced_blobs (which keeps a content an event recorded after its
-- stream's purge still names). The runtime role no longer deletes blobs itself.

CREATE OR REPLACE FUNCTION chronicle.is_purge_event(p_type text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select p_type in ('SessionPurged', 'FilePurged', 'JobPurged', 'SandboxPurged', 'GraphThreadPurged')
$function$;

CREATE OR REPLACE FUNCTION chronicle.payload_hashes(p_data jsonb)
 RETURNS SETOF text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select h.value #>> '{}' from jsonb_path_query(p_data, 'strict $.**') as h(value)
   where jsonb_typeof(h.value) = 'string' and h.value #>> '{}' ~ '^[0-9a-f]{64}$'
$function$;

CREATE OR REPLACE FUNCTION chronicle.redact_event_data(p_type text, p_data jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select case p_type
    when 'GraphCheckpointSaved' then p_data || jsonb_build_object(
      'checkpoint', jsonb_build_object('type', p_data -> 'checkpoint' ->> 'type', 'data', ''),
      'metadata', '{}'::jsonb,
      'blobs', '[]'::jsonb)
    when 'GraphWritesSaved' then p_data || '{"writes": []}'::jsonb
    else p_data || coalesce(
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
              when 'GraphThreadPurged' then '{"reason": null}'
              else '{}' end::jsonb) as b
      where p_data ? b.key),
    '{}'::jsonb) end
$function$;

CREATE OR REPLACE FUNCTION chronicle.redact_stream(p_stream_id text)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_count integer;
begin
  perform set_config('chronicle.redacting', pg_current_xact_id()::text, true);
  update chronicle.events x
     set data = chronicle.redact_event_data(x.type, x.data),
         metadata = x.metadata - 'idempotencyKey' - 'fingerprint'
   where x.stream_id = p_stream_id;
  get diagnostics v_count = row_count;
  perform set_config('chronicle.redacting', '', true);
  return v_count;
end
$function$;

revoke all on function chronicle.redact_stream(text) from public;

CREATE OR REPLACE FUNCTION chronicle.stream_purged_since(p_stream_id text, p_version integer)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
  select exists (select 1 from chronicle.events e
                  where e.stream_id = p_stream_id and e.stream_version >= p_version
                    and chronicle.is_purge_event(e.type))
$function$;

CREATE OR REPLACE FUNCTION chronicle.stream_blob_hashes(p_stream_ids text[])
 RETURNS SETOF text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
  select distinct h.sha256
    from chronicle.events e, chronicle.payload_hashes(e.data) as h(sha256)
   where e.stream_id = any (p_stream_ids)
$function$;

CREATE OR REPLACE FUNCTION chronicle.delete_unreferenced_blobs(p_hashes text[])
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_count integer;
begin
  delete from chronicle.blobs b
   where b.sha256 = any (p_hashes)
     and not exists (
       select 1 from chronicle.files f
        where f.sha256 = b.sha256 and not chronicle.stream_purged_since('file-' || f.id::text, 1))
     and not exists (
       select 1 from chronicle.events e
        where e.data @? format('$.** ? (@ == "%s")', b.sha256)::jsonpath
          and not chronicle.stream_purged_since(e.stream_id, e.stream_version));
  get diagnostics v_count = row_count;
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.graph_checkpoint_hashes(p_graph uuid, p_ns text, p_through text)
 RETURNS SETOF text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
  select distinct h.sha256
    from chronicle.events e, chronicle.payload_hashes(e.data) as h(sha256)
   where e.stream_id = 'graph-' || p_graph::text and e.type in ('GraphCheckpointSaved', 'GraphWritesSaved')
     and e.data ->> 'checkpointNs' = p_ns and (e.data ->> 'checkpointId') collate "C" <= p_through
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_session_stream(p_session_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'session-' || p_session_id::text;
  v_count integer;
  e chronicle.events;
begin
  v_count := chronicle.redact_stream(v_stream);

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

CREATE OR REPLACE FUNCTION chronicle.purge_file_stream(p_file_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'file-' || p_file_id::text;
  v_count integer;
  e chronicle.events;
begin
  v_count := chronicle.redact_stream(v_stream);
  delete from files where id = p_file_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_file(e);
  end loop;
  perform chronicle.purge_stream_snapshots('file', p_file_id);
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_job_stream(p_job_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'job-' || p_job_id::text;
  v_count integer;
  e chronicle.events;
begin
  v_count := chronicle.redact_stream(v_stream);
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
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'sandbox-' || p_sandbox_id::text;
  v_count integer;
  e chronicle.events;
begin
  v_count := chronicle.redact_stream(v_stream);
  delete from sandboxes where id = p_sandbox_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_sandbox(e);
  end loop;
  perform chronicle.purge_stream_snapshots('sandbox', p_sandbox_id);
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
  v_count := chronicle.redact_stream(v_stream);
  delete from chronicle.graph_checkpoints where graph_id = p_graph;
  delete from chronicle.graph_blobs where graph_id = p_graph;
  delete from chronicle.graph_writes where graph_id = p_graph;
  -- Snapshots and builds in progress hold the thread as the redacted log makes it.
  perform chronicle.purge_stream_snapshots('graph', p_graph);
  return v_count;
end
$function$;

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
  -- Blobs: written by files and large values; deleted only by a purge, once nothing names them
  -- (chronicle.delete_unreferenced_blobs, which runs as the owner).
  grant insert on chronicle.blobs to chronicle_runtime;
  revoke delete on chronicle.blobs from chronicle_runtime;
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
    -- What a purge asks of the log: whether a stream was purged, the contents its payloads
    -- name, and which of them nothing unpurged references any more (deleted there).
    chronicle.stream_purged_since(text, integer),
    chronicle.stream_blob_hashes(text[]),
    chronicle.graph_checkpoint_hashes(uuid, text, text),
    chronicle.delete_unreferenced_blobs(text[]),
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

select chronicle.apply_runtime_privileges();
