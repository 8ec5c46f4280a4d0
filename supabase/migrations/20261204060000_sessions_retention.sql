-- sessions_retention: drafted by `pnpm db:diff`; review before committing.
--
-- Not drafted (written by hand at the end, as the schema files do):
--   function chronicle.purge_file_stream(uuid) (grants, comment): added
--   function chronicle.purge_session_stream(uuid) (grants, comment): added

CREATE OR REPLACE FUNCTION chronicle.project_session(e chronicle.events)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  v integer := e.stream_version;
  d jsonb := e.data;
begin
  -- A session is created by the first event of its stream, and only by it.
  if v = 1 and e.type = 'SessionStarted' then
    perform chronicle.start_session(e);
    return;
  elsif v = 1 and e.type = 'SessionForked' then
    perform chronicle.fork_session(e);
    return;
  end if;

  if not exists (select 1 from sessions s where s.id = v_id) then
    return;
  end if;

  case e.type
    when 'SessionRolledBack' then
      perform chronicle.roll_back_session(e);
      return;
    when 'SessionUpdated' then
      insert into session_updates (session_id, version, title_set, title, metadata_set, metadata)
      values (v_id, v, d ? 'title', d ->> 'title', d ? 'metadata', d -> 'metadata');
    when 'MessageAppended' then
      insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
      values (v_id, (d ->> 'messageId')::uuid, v, (d ->> 'seq')::integer, d ->> 'role', d ->> 'content',
              d -> 'metadata', coalesce((d ->> 'createdAt')::timestamptz, e.recorded_at));
    when 'RevisionAdded' then
      insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
      values (v_id, (d ->> 'revisionId')::uuid, v, (d ->> 'number')::integer, d -> 'ir', d ->> 'note',
              e.recorded_at);
    when 'DraftRecorded' then
      insert into drafts
        (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
      values (v_id, (d ->> 'draftId')::uuid, v, d ->> 'code', d ->> 'language', (d ->> 'valid')::boolean,
              d -> 'metrics', (d ->> 'revisionNumber')::integer, e.recorded_at);
    when 'HoleResolved' then
      insert into hole_resolutions
        (session_id, resolution_id, version, hole_id, value, confidence, created_at)
      values (v_id, (d ->> 'resolutionId')::uuid, v, d ->> 'holeId', d -> 'value',
              (d ->> 'confidence')::double precision, e.recorded_at);
    when 'FileAttached' then
      insert into session_files
        (session_id, file_id, version, sha256, name, mime_type, size, attached_at)
      values (v_id, (d ->> 'fileId')::uuid, v, d ->> 'sha256', d ->> 'name', d ->> 'mimeType',
              (d ->> 'size')::bigint, e.recorded_at);
    when 'FileDetached' then
      insert into session_file_detachments (session_id, file_id, version, detached_at)
      values (v_id, (d ->> 'fileId')::uuid, v, e.recorded_at);
    when 'ToolRunRecorded' then
      insert into tool_runs
        (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
      values (v_id, (d ->> 'toolRunId')::uuid, v, d ->> 'tool', d -> 'input', d -> 'output', d ->> 'status',
              (d ->> 'durationMs')::bigint, d ->> 'error', e.recorded_at);
    when 'CheckpointCreated' then
      insert into checkpoints (id, session_id, version, event_version, label, cursor, created_at)
      values ((d ->> 'checkpointId')::uuid, v_id, (d ->> 'version')::integer, v, d ->> 'label',
              d ->> 'cursor', e.recorded_at);
    else
      -- Lifecycle events change only the session row. A type with no read model still
      -- advances the session's version, so that it always equals the stream's.
      null;
  end case;

  update sessions s
     set version = v,
         effective = s.effective + int4multirange(int4range(v, v + 1)),
         head_cursor = chronicle.event_cursor(e),
         updated_at = e.recorded_at,
         last_activity_at = e.recorded_at,
         title = case when e.type = 'SessionUpdated' and d ? 'title' then d ->> 'title' else s.title end,
         metadata = case when e.type = 'SessionUpdated' and d ? 'metadata' then d -> 'metadata'
                         else s.metadata end,
         status = case e.type when 'SessionArchived' then 'archived'
                              when 'SessionDeleted' then 'deleted'
                              when 'SessionPurged' then 'deleted'
                              when 'SessionExpired' then 'expired'
                              when 'SessionReopened' then 'active'
                              else s.status end,
         archived_at = case when e.type = 'SessionArchived' then e.recorded_at else s.archived_at end,
         deleted_at = case when e.type = 'SessionDeleted' then e.recorded_at
                           when e.type = 'SessionPurged' then coalesce(s.deleted_at, e.recorded_at)
                           else s.deleted_at end,
         -- When the session last expired; cleared when a write reopens it.
         expired_at = case e.type when 'SessionExpired' then e.recorded_at
                                  when 'SessionReopened' then null
                                  else s.expired_at end,
         message_count = s.message_count + (e.type = 'MessageAppended')::integer,
         revision_count = s.revision_count + (e.type = 'RevisionAdded')::integer,
         draft_count = s.draft_count + (e.type = 'DraftRecorded')::integer,
         hole_count = s.hole_count + (e.type = 'HoleResolved')::integer,
         file_count = s.file_count + case e.type when 'FileAttached' then 1
                                                 when 'FileDetached' then -1
                                                 else 0 end,
         tool_run_count = s.tool_run_count + (e.type = 'ToolRunRecorded')::integer
   where s.id = v_id;
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
              else '{}' end::jsonb) as b
      where p_data ? b.key),
    '{}'::jsonb)
$function$;

CREATE OR REPLACE FUNCTION chronicle.reject_event_mutation()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
  if tg_op = 'UPDATE' then
    if current_setting('chronicle.redacting', true) = pg_current_xact_id()::text
       and (new.global_position, new.transaction_id, new.stream_id, new.stream_version, new.event_id,
            new.type, new.schema_version, new.recorded_at)
           is not distinct from
           (old.global_position, old.transaction_id, old.stream_id, old.stream_version, old.event_id,
            old.type, old.schema_version, old.recorded_at) then
      return new;
    end if;
  end if;
  raise exception 'chronicle.events is append-only: % is not allowed', tg_op
    using errcode = 'CH001',
          hint = 'Record a new event (for example a rollback) instead of changing history.';
end
$function$;

revoke all on function chronicle.purge_session_stream(uuid) from public;
revoke all on function chronicle.purge_file_stream(uuid) from public;
