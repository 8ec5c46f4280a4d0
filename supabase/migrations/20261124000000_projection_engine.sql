-- Chronicle: the projection engine.
--
-- A projection is a named, versioned SQL handler, `handler(e chronicle.events)`, that folds
-- events into the tables it owns. It runs either inline (in the append's transaction, from
-- the AFTER INSERT trigger on chronicle.events) or async (a daemon follows the log with the
-- safe cursor and applies batches, rows and cursor in one transaction). They are listed in
-- chronicle.projections; chronicle.register_projection() adds one or bumps its version.
--
-- Handlers name their tables without a schema. The engine sets search_path: to `chronicle`
-- when projecting live, to a shadow schema while rebuilding. A rebuild copies the tables'
-- definitions into the shadow schema, replays the log into it while appends continue, then,
-- in one short transaction, applies the last events and swaps the shadow tables in (with
-- their policies, grants, index names, and the views over them). Readers see the old tables
-- until that commit and the new ones after it, never an empty or half-built table. A build
-- into a separate schema up to a cursor is a point-in-time snapshot (analytics_asof_<label>).
--
-- This migration rewrites the built-in projection functions of 20261123000100_read_models.sql
-- with unqualified table names, drops the read models' foreign keys (the projection is the
-- only writer and is deterministic; a swapped table cannot keep them), and registers the
-- built-in projections plus one async projection, `activity` (events per owner and day).

-- ----- read models: no foreign keys -------------------------------------------------------

do $$
declare
  r record;
begin
  for r in select c.conrelid::regclass::text as tbl, c.conname
             from pg_constraint c
            where c.contype = 'f'
              and c.connamespace = 'chronicle'::regnamespace
              and c.conrelid not in ('chronicle.events'::regclass, 'chronicle.streams'::regclass) loop
    execute format('alter table %s drop constraint %I', r.tbl, r.conname);
  end loop;
end
$$;

-- ----- the built-in handlers, with unqualified read-model tables ----------------------------

drop function chronicle.attached_files(uuid, int4multirange);

-- E(p_at) of a session, walking the rollback chain backwards (docs/DOMAIN.md):
--   ranges = []; cur = X
--   loop: R = the latest rollback with version <= cur   (none → ranges += [1, cur]; stop)
--         ranges += [R, cur]; cur = R.toVersion
create or replace function chronicle.rm_effective_versions(p_session_id uuid, p_at integer) returns int4multirange
language plpgsql stable strict as $$
declare
  v_ranges int4multirange := '{}';
  v_cur integer := p_at;
  v_rollback record;
begin
  while v_cur >= 1 loop
    select r.version, r.to_version
      into v_rollback
      from session_rollbacks r
     where r.session_id = p_session_id and r.version <= v_cur
     order by r.version desc
     limit 1;
    if not found then
      return v_ranges + int4multirange(int4range(1, v_cur, '[]'));
    end if;
    v_ranges := v_ranges + int4multirange(int4range(v_rollback.version, v_cur, '[]'));
    -- toVersion < version always holds for a decided rollback; least() only guarantees
    -- that the walk ends whatever the log holds.
    v_cur := least(v_rollback.to_version, v_rollback.version - 1);
  end loop;
  return v_ranges;
end
$$;

-- The attachments of a session that are in effect for the effective set p_effective: the
-- attachment is effective and no effective detachment of that file comes after it.
create or replace function chronicle.rm_attached_files(p_session_id uuid, p_effective int4multirange)
returns table (session_id uuid, file_id uuid, version integer, sha256 text, name text,
               mime_type text, size bigint, attached_at timestamptz)
language plpgsql stable as $$
#variable_conflict use_column
begin
  return query
    select f.session_id, f.file_id, f.version, f.sha256, f.name, f.mime_type, f.size, f.attached_at
      from session_files f
     where f.session_id = p_session_id
       and p_effective @> f.version
       and not exists (
         select 1
           from session_file_detachments x
          where x.session_id = f.session_id
            and x.file_id = f.file_id
            and x.version > f.version
            and p_effective @> x.version);
end
$$;

-- Recomputes a session's counters, title and metadata from its rows and its current
-- `effective` set (after a rollback, and for a new fork).
create or replace function chronicle.recount_session(p_session_id uuid) returns void
language plpgsql as $$
begin
  update sessions s
     set message_count = (select count(*) from messages m
                           where m.session_id = s.id and s.effective @> m.version),
         revision_count = (select count(*) from revisions r
                            where r.session_id = s.id and s.effective @> r.version),
         draft_count = (select count(*) from drafts d
                         where d.session_id = s.id and s.effective @> d.version),
         hole_count = (select count(*) from hole_resolutions h
                        where h.session_id = s.id and s.effective @> h.version),
         file_count = (select count(*) from chronicle.rm_attached_files(s.id, s.effective)),
         -- Tool runs record what happened in the world: a rollback never reverts them.
         tool_run_count = (select count(*) from tool_runs t where t.session_id = s.id),
         title = (select u.title from session_updates u
                   where u.session_id = s.id and u.title_set and s.effective @> u.version
                   order by u.version desc limit 1),
         metadata = coalesce((select u.metadata from session_updates u
                               where u.session_id = s.id and u.metadata_set and s.effective @> u.version
                               order by u.version desc limit 1), '{}'::jsonb)
   where s.id = p_session_id;
end
$$;

-- ----- session streams --------------------------------------------------------------------

create or replace function chronicle.start_session(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
begin
  insert into sessions
    (id, owner_id, title, metadata, status, version, external_key, effective, head_cursor,
     created_at, updated_at, last_activity_at)
  values
    (v_id, (d ->> 'ownerId')::uuid, d ->> 'title', d -> 'metadata', 'active', e.stream_version,
     d ->> 'externalKey', int4multirange(int4range(e.stream_version, e.stream_version + 1)),
     chronicle.event_cursor(e), e.recorded_at, e.recorded_at, e.recorded_at);

  insert into session_updates (session_id, version, title_set, title, metadata_set, metadata)
  values (v_id, e.stream_version, true, d ->> 'title', true, d -> 'metadata');
end
$$;

-- A fork starts as its parent's content as of atVersion, copied in at version 1 (ids, seq,
-- numbers and timestamps kept); the title and metadata are the fork event's.
create or replace function chronicle.fork_session(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
  v integer := e.stream_version;
  v_parent uuid := (d ->> 'parentId')::uuid;
  v_at integer := (d ->> 'atVersion')::integer;
  v_as_of int4multirange := chronicle.rm_effective_versions(v_parent, v_at);
begin
  insert into sessions
    (id, owner_id, title, metadata, status, version, parent_id, parent_version, external_key,
     effective, head_cursor, created_at, updated_at, last_activity_at)
  values
    (v_id, (d ->> 'ownerId')::uuid, d ->> 'title', d -> 'metadata', 'active', v, v_parent, v_at,
     d ->> 'externalKey', int4multirange(int4range(v, v + 1)), chronicle.event_cursor(e),
     e.recorded_at, e.recorded_at, e.recorded_at);

  insert into session_updates (session_id, version, title_set, title, metadata_set, metadata)
  values (v_id, v, true, d ->> 'title', true, d -> 'metadata');

  insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
  select v_id, m.message_id, v, m.seq, m.role, m.content, m.metadata, m.created_at
    from messages m
   where m.session_id = v_parent and v_as_of @> m.version;

  insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
  select v_id, r.revision_id, v, r.number, r.ir, r.note, r.created_at
    from revisions r
   where r.session_id = v_parent and v_as_of @> r.version;

  insert into drafts
    (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
  select v_id, x.draft_id, v, x.code, x.language, x.valid, x.metrics, x.revision_number, x.created_at
    from drafts x
   where x.session_id = v_parent and v_as_of @> x.version;

  insert into hole_resolutions
    (session_id, resolution_id, version, hole_id, value, confidence, created_at)
  select v_id, h.resolution_id, v, h.hole_id, h.value, h.confidence, h.created_at
    from hole_resolutions h
   where h.session_id = v_parent and v_as_of @> h.version;

  insert into session_files (session_id, file_id, version, sha256, name, mime_type, size, attached_at)
  select v_id, f.file_id, v, f.sha256, f.name, f.mime_type, f.size, f.attached_at
    from chronicle.rm_attached_files(v_parent, v_as_of) f;

  insert into tool_runs
    (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
  select v_id, t.tool_run_id, v, t.tool, t.input, t.output, t.status, t.duration_ms, t.error, t.created_at
    from tool_runs t
   where t.session_id = v_parent and t.version <= v_at;

  perform chronicle.recount_session(v_id);
end
$$;

-- SessionRolledBack at version R: E(R) = E(toVersion) ∪ {R}; counters, title and metadata
-- are recomputed over the rows that are effective again.
create or replace function chronicle.roll_back_session(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
begin
  insert into session_rollbacks (session_id, version, to_version)
  values (v_id, e.stream_version, (e.data ->> 'toVersion')::integer);

  update sessions s
     set version = e.stream_version,
         effective = chronicle.rm_effective_versions(v_id, e.stream_version),
         head_cursor = chronicle.event_cursor(e),
         updated_at = e.recorded_at,
         last_activity_at = e.recorded_at
   where s.id = v_id;

  perform chronicle.recount_session(v_id);
end
$$;

create or replace function chronicle.project_session(e chronicle.events) returns void
language plpgsql as $$
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
                              when 'SessionExpired' then 'expired'
                              else s.status end,
         archived_at = case when e.type = 'SessionArchived' then e.recorded_at else s.archived_at end,
         deleted_at = case when e.type = 'SessionDeleted' then e.recorded_at else s.deleted_at end,
         expired_at = case when e.type = 'SessionExpired' then e.recorded_at else s.expired_at end,
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
$$;

-- ----- job streams ------------------------------------------------------------------------

create or replace function chronicle.project_job(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
begin
  if e.stream_version = 1 and e.type = 'JobCreated' then
    insert into jobs
      (id, owner_id, session_id, parent_job_id, job_type, state, input, version, created_at, updated_at)
    values (v_id, (d ->> 'ownerId')::uuid, (d ->> 'sessionId')::uuid, (d ->> 'parentJobId')::uuid,
            d ->> 'jobType', 'queued', d -> 'input', e.stream_version, e.recorded_at, e.recorded_at);
    return;
  end if;

  if not exists (select 1 from jobs j where j.id = v_id) then
    return;
  end if;

  case e.type
    when 'TaskAdded' then
      insert into tasks (job_id, task_id, name, status, input, created_at, updated_at)
      values (v_id, (d ->> 'taskId')::uuid, d ->> 'name', 'pending', d -> 'input', e.recorded_at, e.recorded_at);
    when 'TaskUpdated' then
      update tasks t
         set status = d ->> 'status',
             output = d -> 'output',
             error = d ->> 'error',
             progress = (d ->> 'progress')::double precision,
             updated_at = e.recorded_at
       where t.job_id = v_id and t.task_id = (d ->> 'taskId')::uuid;
    when 'ArtifactRecorded' then
      insert into artifacts
        (job_id, artifact_id, file_id, session_id, kind, name, sha256, mime_type, size, created_at)
      select v_id, (d ->> 'artifactId')::uuid, (d ->> 'fileId')::uuid, j.session_id, d ->> 'kind',
             d ->> 'name', d ->> 'sha256', d ->> 'mimeType', (d ->> 'size')::bigint, e.recorded_at
        from jobs j
       where j.id = v_id;
    else
      null; -- the job row only
  end case;

  update jobs j
     set state = case e.type when 'JobStarted' then 'running'
                             when 'JobPaused' then 'paused'
                             when 'JobResumed' then 'running'
                             when 'JobCompleted' then 'completed'
                             when 'JobFailed' then 'failed'
                             when 'JobCancelled' then 'cancelled'
                             else j.state end,
         started_at = case when e.type = 'JobStarted' then e.recorded_at else j.started_at end,
         finished_at = case when e.type in ('JobCompleted', 'JobFailed', 'JobCancelled') then e.recorded_at
                            else j.finished_at end,
         progress = case when e.type = 'JobProgressed' then (d ->> 'progress')::double precision
                         else j.progress end,
         progress_message = case when e.type = 'JobProgressed' then d ->> 'message' else j.progress_message end,
         output = case when e.type = 'JobCompleted' then d -> 'output' else j.output end,
         error = case when e.type = 'JobFailed' then d ->> 'error' else j.error end,
         error_details = case when e.type = 'JobFailed' then d -> 'details' else j.error_details end,
         version = e.stream_version,
         updated_at = e.recorded_at
   where j.id = v_id;
end
$$;

-- ----- file streams -----------------------------------------------------------------------

create or replace function chronicle.project_file(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
begin
  if e.stream_version = 1 and e.type = 'FileUploaded' then
    insert into files (id, owner_id, sha256, name, mime_type, size, version, created_at, updated_at)
    values (v_id, (d ->> 'ownerId')::uuid, d ->> 'sha256', d ->> 'name', d ->> 'mimeType',
            (d ->> 'size')::bigint, e.stream_version, e.recorded_at, e.recorded_at);
  else
    update files f
       set version = e.stream_version, updated_at = e.recorded_at
     where f.id = v_id;
  end if;
end
$$;

-- ----- sandbox streams --------------------------------------------------------------------

create or replace function chronicle.project_sandbox(e chronicle.events) returns void
language plpgsql as $$
declare
  v_id uuid := chronicle.stream_uuid(e.stream_id);
  d jsonb := e.data;
begin
  if e.stream_version = 1 and e.type = 'SandboxRegistered' then
    insert into sandboxes
      (id, session_id, owner_id, provider, external_id, url, status, metadata, version, created_at, updated_at)
    values (v_id, (d ->> 'sessionId')::uuid, (d ->> 'ownerId')::uuid, d ->> 'provider', d ->> 'externalId',
            d ->> 'url', 'starting', d -> 'metadata', e.stream_version, e.recorded_at, e.recorded_at);
  elsif e.type = 'SandboxStatusChanged' then
    update sandboxes s
       set status = d ->> 'status',
           -- A status change without a URL keeps the one already known.
           url = coalesce(d ->> 'url', s.url),
           started_at = case when d ->> 'status' = 'running' then e.recorded_at else s.started_at end,
           ended_at = case when d ->> 'status' in ('stopped', 'failed', 'expired') then e.recorded_at
                           else s.ended_at end,
           version = e.stream_version,
           updated_at = e.recorded_at
     where s.id = v_id;
  else
    update sandboxes s
       set version = e.stream_version, updated_at = e.recorded_at
     where s.id = v_id;
  end if;
end
$$;


-- What the domain's queries call: the same functions over the live tables, whatever the
-- caller's search_path.
create or replace function chronicle.effective_versions(p_session_id uuid, p_at integer) returns int4multirange
language sql stable strict set search_path = chronicle, pg_temp as $$
  select chronicle.rm_effective_versions(p_session_id, p_at)
$$;

create function chronicle.attached_files(p_session_id uuid, p_effective int4multirange)
returns table (session_id uuid, file_id uuid, version integer, sha256 text, name text,
               mime_type text, size bigint, attached_at timestamptz)
language sql stable set search_path = chronicle, pg_temp as $$
  select * from chronicle.rm_attached_files(p_session_id, p_effective)
$$;

-- The stop-the-world rebuild of the built-in read models (kept for tests and small logs; the
-- engine's rebuild does not block appends).
create or replace function chronicle.rebuild_read_models() returns bigint
language plpgsql set search_path = chronicle, pg_temp as $$
declare
  e chronicle.events;
  n bigint := 0;
begin
  truncate sessions, session_rollbacks, session_updates, messages, revisions, drafts, hole_resolutions,
           session_files, session_file_detachments, tool_runs, checkpoints, files, jobs, tasks, artifacts,
           sandboxes;
  for e in select * from chronicle.events order by global_position loop
    perform chronicle.project_selected(e, array['sessions', 'jobs', 'files', 'sandboxes']);
    n := n + 1;
  end loop;
  return n;
end
$$;

-- ----- the registry ---------------------------------------------------------------------

create table chronicle.projections (
  name              text primary key check (name ~ '^[a-z][a-z0-9_]{0,39}$'),
  -- The definition's version; migrations bump it when a handler or its tables change.
  version           integer not null check (version >= 1),
  -- The version the live tables were built with; null until the first build.
  built_version     integer,
  mode              text not null check (mode in ('inline', 'async')),
  -- A function (e chronicle.events) returns void, schema-qualified.
  handler           text not null,
  tables            text[] not null check (cardinality(tables) >= 1),
  -- The stream categories ('session' for 'session-<uuid>') whose events it folds; null = all.
  stream_categories text[],
  description       text,
  state             text not null check (state in ('live', 'backfilling', 'rebuilding', 'failed')),
  -- Async projections: the cursor of the last applied event, and how they are doing.
  cursor_xid        xid8,
  cursor_position   bigint,
  events_applied    bigint not null default 0,
  events_per_second double precision,
  last_event_at     timestamptz,
  last_applied_at   timestamptz,
  -- The daemon that applies it (a lease: another process takes over once it expires).
  lease_owner       text,
  lease_expires_at  timestamptz,
  last_error        text,
  registered_at     timestamptz not null default now(),
  updated_at        timestamptz not null default now()
);

create table chronicle.projection_runs (
  id              uuid primary key,
  kind            text not null check (kind in ('rebuild', 'snapshot')),
  projections     text[] not null,
  -- Snapshots: the label, and the schema (analytics_asof_<label>) they are built into.
  label           text,
  target_schema   text not null,
  -- What the caller asked for ({"cursor": …} | {"checkpointId": …} | {"timestamp": …}) and the
  -- last event it resolved to (inclusive); null for a rebuild, which follows the head.
  as_of           jsonb,
  bound_xid       xid8,
  bound_position  bigint,
  state           text not null check (state in ('running', 'cancelling', 'completed', 'failed', 'cancelled', 'dropped')),
  phase           text not null default 'preparing',
  cursor_xid      xid8,
  cursor_position bigint,
  events_done     bigint not null default 0,
  events_total    bigint not null default 0,
  worker          text,
  heartbeat_at    timestamptz,
  started_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  finished_at     timestamptz,
  error           text
);

create index projection_runs_started_idx on chronicle.projection_runs (started_at desc);
create unique index projection_runs_label_idx on chronicle.projection_runs (label)
  where kind = 'snapshot' and state in ('running', 'cancelling', 'completed');

-- Whether every table of a projection exists in the chronicle schema.
create function chronicle.projection_tables_exist(p_tables text[]) returns boolean
language sql stable as $$
  select count(*) = cardinality(p_tables)
    from pg_class c
   where c.relnamespace = 'chronicle'::regnamespace and c.relkind in ('r', 'p') and c.relname = any (p_tables)
$$;

-- (Re)generates the two dispatchers from the registry, as static code (no dynamic SQL per
-- event):
--   chronicle.project(e)                  every inline projection whose tables exist (the trigger)
--   chronicle.project_selected(e, names)  the named projections (rebuilds, snapshots, the daemon)
create function chronicle.refresh_projection_dispatch() returns void
language plpgsql as $$
declare
  p record;
  v_when text;
  v_inline text := '';
  v_selected text := '';
begin
  for p in select * from chronicle.projections order by name loop
    v_when := case
      when p.stream_categories is null then 'true'
      when cardinality(p.stream_categories) = 1 then format('v_category = %L', p.stream_categories[1])
      else format('v_category = any (%L::text[])', p.stream_categories) end;
    if p.mode = 'inline' and chronicle.projection_tables_exist(p.tables) then
      v_inline := v_inline || format(E'  if %s then perform %s(e); end if;\n', v_when, p.handler);
    end if;
    v_selected := v_selected
      || format(E'  if %L = any (p_names) and %s then perform %s(e); end if;\n', p.name, v_when, p.handler);
  end loop;
  execute format(E'create or replace function chronicle.project(e chronicle.events) returns void\n'
                  'language plpgsql as $body$\ndeclare\n  v_category text := split_part(e.stream_id, ''-'', 1);\n'
                  'begin\n%s  return;\nend\n$body$', v_inline);
  execute format(E'create or replace function chronicle.project_selected(e chronicle.events, p_names text[])\n'
                  'returns void language plpgsql as $body$\ndeclare\n'
                  '  v_category text := split_part(e.stream_id, ''-'', 1);\n'
                  'begin\n%s  return;\nend\n$body$', v_selected);
end
$$;

-- Adds a projection, or moves it to a new version. A new projection over a log that already
-- holds events of its streams starts as 'backfilling', a new version as 'rebuilding': the
-- server's engine then rebuilds it in the background (its old tables keep serving).
create function chronicle.register_projection(
  p_name text,
  p_version integer,
  p_mode text,
  p_handler text,
  p_tables text[],
  p_stream_categories text[] default null,
  p_description text default null
) returns void
language plpgsql as $$
declare
  v_existing chronicle.projections;
  v_has_events boolean;
begin
  if to_regprocedure(p_handler || '(chronicle.events)') is null then
    raise exception 'projection %: no function %(chronicle.events)', p_name, p_handler using errcode = '22023';
  end if;
  select * into v_existing from chronicle.projections where name = p_name for update;
  if not found then
    v_has_events := exists (
      select 1 from chronicle.streams s
       where s.version > 0 and (p_stream_categories is null or s.stream_type = any (p_stream_categories)));
    insert into chronicle.projections
      (name, version, built_version, mode, handler, tables, stream_categories, description, state)
    values
      (p_name, p_version, case when v_has_events then null else p_version end, p_mode, p_handler, p_tables,
       p_stream_categories, p_description, case when v_has_events then 'backfilling' else 'live' end);
  elsif p_version < v_existing.version then
    raise exception 'projection % is at version %; cannot register version %', p_name, v_existing.version, p_version
      using errcode = '22023';
  else
    update chronicle.projections
       set version = p_version,
           mode = p_mode,
           handler = p_handler,
           tables = p_tables,
           stream_categories = p_stream_categories,
           description = coalesce(p_description, description),
           state = case when p_version > v_existing.version
                        then case when built_version is null then 'backfilling' else 'rebuilding' end
                        else state end,
           updated_at = now()
     where name = p_name;
  end if;
  perform chronicle.refresh_projection_dispatch();
end
$$;

-- The trigger projects with search_path = chronicle, whatever the appending session set.
create or replace function chronicle.project_event() returns trigger
language plpgsql set search_path = chronicle, pg_temp as $$
begin
  perform chronicle.project(new);
  return null;
end
$$;

-- ----- builds: rebuilds and snapshots ----------------------------------------------------

-- Creates the run's schema and, in it, an empty copy of every table of its projections.
-- Idempotent, so a resumed run can call it again.
create function chronicle.prepare_projection_build(p_run uuid) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  t text;
begin
  select * into r from chronicle.projection_runs where id = p_run for update;
  execute format('create schema if not exists %I', r.target_schema);
  for t in select unnest(p.tables) from chronicle.projections p where p.name = any (r.projections) loop
    if to_regclass(format('%I.%I', r.target_schema, t)) is null then
      execute format('create table %I.%I (like chronicle.%I including all)', r.target_schema, t, t);
    end if;
  end loop;
  update chronicle.projection_runs
     set phase = case when phase = 'preparing' then 'copying' else phase end, updated_at = now()
   where id = p_run;
end
$$;

-- projection_build_batch(run, worker, limit), which applies a build's next batch, is defined in
-- 20261124000200_build_fast_path.sql.

-- Finishes a rebuild: stops appends for a moment when an inline projection is among the
-- rebuilt ones, applies the events that arrived since the last batch, swaps the shadow tables
-- in, and marks the projections live at the new version. One transaction: readers see either
-- the old tables or the new ones. The new tables keep what the old ones had: row-level security,
-- policies, grants, dependent views, index names, replica identity, and membership of every
-- publication that listed them (with its column list and row filter; Postgres 15 and later, the
-- same membership on 14). A publication lists tables by oid, so without that Supabase Realtime's
-- supabase_realtime feed would go silent after a rebuild. Adding a table to a publication needs
-- to own it: a rebuild run by a role that does not own one fails and leaves the live tables.
create function chronicle.finish_projection_rebuild(p_run uuid, p_worker text) returns bigint
language plpgsql as $$
declare
  r chronicle.projection_runs;
  e chronicle.events;
  n bigint := 0;
  v_inline boolean;
  v_xmin xid8;
  v_last_xid xid8;
  v_last_position bigint;
  v_retired text := 'chronicle_retired_' || replace(p_run::text, '-', '');
  v_tables text[];
  v_views record;
  v_view_defs jsonb := '[]'::jsonb;
  v_item jsonb;
  t text;
  v_old regclass;
  v_new regclass;
  g record;
  v_renames jsonb := '[]'::jsonb;
  v_identity "char";
  v_identity_index text;
  v_publications jsonb;
  -- Publications' column lists and row filters (pg_publication_rel.prattrs, prqual) exist from 15 on.
  v_publication_details boolean := current_setting('server_version_num')::integer >= 150000;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if r.state <> 'running' or r.worker is distinct from p_worker or r.kind <> 'rebuild' then
    raise exception 'projection run % is not a running rebuild held by this worker', p_run using errcode = '55000';
  end if;
  select bool_or(p.mode = 'inline'), array_agg(tb order by tb)
    into v_inline, v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);

  -- Give up quickly rather than queue readers behind us; the caller retries.
  perform set_config('lock_timeout', '2s', true);
  if v_inline then
    -- No append can be in flight after this, so every event is visible and complete.
    lock table chronicle.events in share row exclusive mode;
  end if;
  v_xmin := case when v_inline then null else pg_snapshot_xmin(pg_current_snapshot()) end;

  perform set_config('search_path', r.target_schema, true);
  v_last_xid := r.cursor_xid;
  v_last_position := r.cursor_position;
  for e in
    select * from chronicle.events ev
     where (ev.transaction_id, ev.global_position) > (coalesce(r.cursor_xid, '0'::xid8), coalesce(r.cursor_position, 0))
       and (v_xmin is null or ev.transaction_id < v_xmin)
     order by ev.transaction_id, ev.global_position
  loop
    perform chronicle.project_selected(e, r.projections);
    n := n + 1;
    v_last_xid := e.transaction_id;
    v_last_position := e.global_position;
  end loop;

  -- From here on every name is schema-qualified, and view definitions come out qualified.
  perform set_config('search_path', 'pg_catalog', true);

  for v_views in
    select distinct v.oid, v.reloptions
      from pg_depend d
      join pg_rewrite rw on rw.oid = d.objid
      join pg_class v on v.oid = rw.ev_class
     where d.classid = 'pg_rewrite'::regclass
       and d.refobjid in (select format('chronicle.%I', x)::regclass from unnest(v_tables) x)
       and v.oid <> d.refobjid
     order by v.oid
  loop
    v_view_defs := v_view_defs || jsonb_build_object(
      'view', v_views.oid::regclass::text,
      'definition', pg_get_viewdef(v_views.oid),
      'options', coalesce(array_to_string(v_views.reloptions, ', '), ''));
  end loop;

  execute format('create schema %I', v_retired);
  foreach t in array v_tables loop
    execute format('alter table chronicle.%I set schema %I', t, v_retired);
    execute format('alter table %I.%I set schema chronicle', r.target_schema, t);
    v_old := format('%I.%I', v_retired, t)::regclass;
    v_new := format('chronicle.%I', t)::regclass;

    -- Row-level security, its policies, and the grants of the old table.
    if (select relrowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s enable row level security', v_new);
    end if;
    if (select relforcerowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s force row level security', v_new);
    end if;
    for g in
      select pol.polname, pol.polpermissive,
             case pol.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                             when 'd' then 'delete' else 'all' end as cmd,
             (select string_agg(case when ro = 0 then 'public' else quote_ident(rl.rolname) end, ', ')
                from unnest(pol.polroles) ro left join pg_roles rl on rl.oid = ro) as roles,
             pg_get_expr(pol.polqual, pol.polrelid) as qual,
             pg_get_expr(pol.polwithcheck, pol.polrelid) as withcheck
        from pg_policy pol
       where pol.polrelid = v_old
    loop
      execute format('create policy %I on %s as %s for %s to %s%s%s', g.polname, v_new,
                     case when g.polpermissive then 'permissive' else 'restrictive' end, g.cmd, g.roles,
                     case when g.qual is null then '' else ' using (' || g.qual || ')' end,
                     case when g.withcheck is null then '' else ' with check (' || g.withcheck || ')' end);
    end loop;
    for g in
      select a.privilege_type, a.is_grantable,
             case when a.grantee = 0 then 'public' else quote_ident(rl.rolname) end as grantee
        from pg_class c
        cross join lateral aclexplode(c.relacl) a
        left join pg_roles rl on rl.oid = a.grantee
       where c.oid = v_old
    loop
      execute format('grant %s on %s to %s%s', g.privilege_type, v_new, g.grantee,
                     case when g.is_grantable then ' with grant option' else '' end);
    end loop;

    -- The new indexes take the old ones' names once those are gone.
    for g in
      select o.relname as old_name, ni.indexrelid::regclass::text as new_index
        from pg_index oi
        join pg_class o on o.oid = oi.indexrelid
        join pg_index ni on ni.indrelid = v_new
       where oi.indrelid = v_old
         and regexp_replace(pg_get_indexdef(oi.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
           = regexp_replace(pg_get_indexdef(ni.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
    loop
      v_renames := v_renames || jsonb_build_object('old', g.old_name, 'new', g.new_index);
    end loop;

    -- Replica identity (what logical decoding, so Supabase Realtime, sends of an updated or
    -- deleted row): the same setting; USING INDEX names the new copy of the old index, which
    -- takes the old one's name below. Set before the publications, whose row filters and
    -- column lists are checked against it.
    v_identity := (select relreplident from pg_class where oid = v_old);
    if v_identity = 'f' then
      execute format('alter table %s replica identity full', v_new);
    elsif v_identity = 'n' then
      execute format('alter table %s replica identity nothing', v_new);
    elsif v_identity = 'i' then
      select quote_ident(n.relname) into v_identity_index
        from pg_index oi
        join pg_index ni on ni.indrelid = v_new
        join pg_class n on n.oid = ni.indexrelid
       where oi.indrelid = v_old and oi.indisreplident
         and regexp_replace(pg_get_indexdef(oi.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
           = regexp_replace(pg_get_indexdef(ni.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1');
      execute format('alter table %s replica identity using index %s', v_new, v_identity_index);
    end if;

    -- The publications that list the old table (Supabase Realtime's supabase_realtime, a
    -- logical replication feed) list the new one, with the same column list and row filter.
    -- FOR ALL TABLES and FOR TABLES IN SCHEMA chronicle publications cover it already.
    if v_publication_details then
      select coalesce(jsonb_agg(jsonb_build_object(
               'publication', pub.pubname,
               'columns', (select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
                             from pg_attribute a where a.attrelid = pr.prrelid and a.attnum = any (pr.prattrs)),
               'filter', pg_get_expr(pr.prqual, pr.prrelid)) order by pub.pubname), '[]'::jsonb)
        into v_publications
        from pg_publication_rel pr join pg_publication pub on pub.oid = pr.prpubid
       where pr.prrelid = v_old;
    else
      select coalesce(jsonb_agg(jsonb_build_object('publication', pub.pubname) order by pub.pubname), '[]'::jsonb)
        into v_publications
        from pg_publication_rel pr join pg_publication pub on pub.oid = pr.prpubid
       where pr.prrelid = v_old;
    end if;
    for v_item in select * from jsonb_array_elements(v_publications) loop
      execute format('alter publication %I add table %s%s%s', v_item ->> 'publication', v_new,
                     case when v_item ->> 'columns' is null then '' else ' (' || (v_item ->> 'columns') || ')' end,
                     case when v_item ->> 'filter' is null then '' else ' where (' || (v_item ->> 'filter') || ')' end);
    end loop;
  end loop;

  -- Views over the swapped tables now point at the new ones.
  for v_item in select * from jsonb_array_elements(v_view_defs) loop
    execute format('create or replace view %s as %s', v_item ->> 'view', v_item ->> 'definition');
    if v_item ->> 'options' <> '' then
      execute format('alter view %s set (%s)', v_item ->> 'view', v_item ->> 'options');
    end if;
  end loop;

  execute format('drop schema %I cascade', v_retired);
  for v_item in select * from jsonb_array_elements(v_renames) loop
    if split_part(v_item ->> 'new', '.', 2) <> v_item ->> 'old' then
      execute format('alter index %s rename to %I', v_item ->> 'new', v_item ->> 'old');
    end if;
  end loop;
  execute format('drop schema %I', r.target_schema);
  perform set_config('search_path', 'chronicle', true);

  update chronicle.projections p
     set built_version = p.version,
         state = 'live',
         last_error = null,
         cursor_xid = case when p.mode = 'async' then v_last_xid else p.cursor_xid end,
         cursor_position = case when p.mode = 'async' then v_last_position else p.cursor_position end,
         updated_at = now()
   where p.name = any (r.projections);
  update chronicle.projection_runs x
     set state = 'completed',
         phase = 'done',
         cursor_xid = v_last_xid,
         cursor_position = v_last_position,
         events_done = x.events_done + n,
         events_total = x.events_done + n,
         finished_at = now(),
         heartbeat_at = now(),
         updated_at = now()
   where x.id = p_run;
  perform chronicle.refresh_projection_dispatch();
  return n;
end
$$;

-- Finishes a snapshot: the views over its tables are created in its schema too.
create function chronicle.finish_projection_snapshot(p_run uuid, p_worker text) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_tables text[];
  v record;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if r.state <> 'running' or r.worker is distinct from p_worker or r.kind <> 'snapshot' then
    raise exception 'projection run % is not a running snapshot held by this worker', p_run using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  -- Definitions come out with chronicle's tables unqualified, so they bind to the snapshot's.
  perform set_config('search_path', 'chronicle', true);
  for v in
    select c.oid, c.relname, c.reloptions, pg_get_viewdef(c.oid) as definition
      from pg_class c
     where c.relnamespace = 'chronicle'::regnamespace and c.relkind = 'v'
       and not exists (
         select 1
           from pg_depend d
           join pg_rewrite rw on rw.oid = d.objid
           join pg_class t on t.oid = d.refobjid
          where rw.ev_class = c.oid and d.classid = 'pg_rewrite'::regclass and t.oid <> c.oid
            and t.relkind in ('r', 'p', 'v') and t.relnamespace = 'chronicle'::regnamespace
            and t.relname <> all (v_tables))
       and exists (
         select 1 from pg_depend d join pg_rewrite rw on rw.oid = d.objid
          where rw.ev_class = c.oid and d.classid = 'pg_rewrite'::regclass and d.refobjid <> c.oid)
     order by c.oid
  loop
    perform set_config('search_path', r.target_schema, true);
    execute format('create view %I.%I as %s', r.target_schema, v.relname, v.definition);
    perform set_config('search_path', 'chronicle', true);
  end loop;
  update chronicle.projection_runs x
     set state = 'completed', phase = 'done', events_total = x.events_done, finished_at = now(),
         heartbeat_at = now(), updated_at = now()
   where x.id = p_run;
end
$$;

-- ----- the async daemon's step --------------------------------------------------------------

-- Applies the next batch of an async projection, if this worker holds (or can take) its
-- lease. Rows and cursor move in one transaction; the cursor is read under the projection's
-- row lock, so two daemons never both apply an event.
create function chronicle.projection_async_batch(p_name text, p_worker text, p_limit integer, p_lease_seconds integer)
returns table (applied integer, held boolean, caught_up boolean)
language plpgsql as $$
declare
  p chronicle.projections;
  e chronicle.events;
  n integer := 0;
  v_xmin xid8;
  v_last chronicle.events;
  v_started timestamptz := clock_timestamp();
begin
  select * into p from chronicle.projections x where x.name = p_name for update;
  if not found or p.mode <> 'async' then
    raise exception 'no async projection %', p_name using errcode = 'P0002';
  end if;
  if p.lease_owner is distinct from p_worker and p.lease_expires_at > now() then
    return query select 0, false, false;
    return;
  end if;
  update chronicle.projections x
     set lease_owner = p_worker, lease_expires_at = now() + make_interval(secs => p_lease_seconds)
   where x.name = p_name;
  if p.built_version is null or p.state = 'backfilling' then
    -- Not built yet: a rebuild run owns it.
    return query select 0, true, true;
    return;
  end if;
  perform set_config('search_path', 'chronicle', true);
  v_xmin := pg_snapshot_xmin(pg_current_snapshot());
  for e in
    select * from chronicle.events ev
     where (ev.transaction_id, ev.global_position) > (coalesce(p.cursor_xid, '0'::xid8), coalesce(p.cursor_position, 0))
       and ev.transaction_id < v_xmin
     order by ev.transaction_id, ev.global_position
     limit p_limit
  loop
    perform chronicle.project_selected(e, array[p_name]);
    n := n + 1;
    v_last := e;
  end loop;
  if n > 0 then
    update chronicle.projections x
       set cursor_xid = v_last.transaction_id,
           cursor_position = v_last.global_position,
           events_applied = x.events_applied + n,
           last_event_at = v_last.recorded_at,
           last_applied_at = now(),
           events_per_second = n / greatest(extract(epoch from clock_timestamp() - v_started), 0.000001),
           state = 'live',
           last_error = null,
           updated_at = now()
     where x.name = p_name;
  elsif p.state = 'failed' then
    update chronicle.projections x set state = 'live', last_error = null, updated_at = now() where x.name = p_name;
  end if;
  return query select n, true, n < p_limit;
end
$$;

-- ----- the built-in projections ---------------------------------------------------------

insert into chronicle.projections
  (name, version, built_version, mode, handler, tables, stream_categories, description, state)
values
  ('sessions', 1, 1, 'inline', 'chronicle.project_session',
   array['sessions', 'session_rollbacks', 'session_updates', 'messages', 'revisions', 'drafts',
         'hole_resolutions', 'session_files', 'session_file_detachments', 'tool_runs', 'checkpoints'],
   array['session'], 'Sessions and their content, with effective history for as-of reads and rollback', 'live'),
  ('jobs', 1, 1, 'inline', 'chronicle.project_job', array['jobs', 'tasks', 'artifacts'], array['job'],
   'Jobs with their tasks and artifacts', 'live'),
  ('files', 1, 1, 'inline', 'chronicle.project_file', array['files'], array['file'],
   'Uploaded files (their bytes live in chronicle.blobs, which no projection writes)', 'live'),
  ('sandboxes', 1, 1, 'inline', 'chronicle.project_sandbox', array['sandboxes'], array['sandbox'],
   'Execution sandboxes and their status', 'live');

-- ----- activity: an async projection of what happened per owner and day ------------------
--
-- Counts events as they happened (UTC days of recorded_at): content a rollback later reverted
-- still counts as activity. Self-contained: it keeps its own stream → owner map.

create table chronicle.activity_streams (
  stream_id  text primary key,
  owner_id   uuid not null,
  kind       text not null
);

create table chronicle.activity_daily (
  owner_id         uuid not null,
  day              date not null,
  sessions_started integer not null default 0,
  messages         integer not null default 0,
  revisions        integer not null default 0,
  drafts           integer not null default 0,
  valid_drafts     integer not null default 0,
  tool_runs        integer not null default 0,
  jobs_created     integer not null default 0,
  jobs_completed   integer not null default 0,
  jobs_failed      integer not null default 0,
  primary key (owner_id, day)
);

create index activity_daily_day_idx on chronicle.activity_daily (day);

create table chronicle.activity_daily_drafts (
  owner_id     uuid not null,
  day          date not null,
  language     text not null,
  drafts       integer not null default 0,
  valid_drafts integer not null default 0,
  primary key (owner_id, day, language)
);

create index activity_daily_drafts_day_idx on chronicle.activity_daily_drafts (day);

create function chronicle.project_activity(e chronicle.events) returns void
language plpgsql as $$
declare
  v_owner uuid;
  v_day date := (e.recorded_at at time zone 'UTC')::date;
  v_valid integer;
begin
  if e.type not in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
                    'ToolRunRecorded', 'JobCreated', 'JobCompleted', 'JobFailed') then
    return;
  end if;
  if e.type in ('SessionStarted', 'SessionForked', 'JobCreated') and e.stream_version = 1 then
    v_owner := (e.data ->> 'ownerId')::uuid;
    insert into activity_streams (stream_id, owner_id, kind)
    values (e.stream_id, v_owner, split_part(e.stream_id, '-', 1))
    on conflict (stream_id) do nothing;
  else
    select s.owner_id into v_owner from activity_streams s where s.stream_id = e.stream_id;
  end if;
  if v_owner is null then
    return;
  end if;
  v_valid := case when e.type = 'DraftRecorded' and (e.data ->> 'valid')::boolean then 1 else 0 end;
  insert into activity_daily as a
    (owner_id, day, sessions_started, messages, revisions, drafts, valid_drafts, tool_runs, jobs_created,
     jobs_completed, jobs_failed)
  values
    (v_owner, v_day, (e.type in ('SessionStarted', 'SessionForked'))::integer, (e.type = 'MessageAppended')::integer,
     (e.type = 'RevisionAdded')::integer, (e.type = 'DraftRecorded')::integer, v_valid,
     (e.type = 'ToolRunRecorded')::integer, (e.type = 'JobCreated')::integer, (e.type = 'JobCompleted')::integer,
     (e.type = 'JobFailed')::integer)
  on conflict (owner_id, day) do update
     set sessions_started = a.sessions_started + excluded.sessions_started,
         messages = a.messages + excluded.messages,
         revisions = a.revisions + excluded.revisions,
         drafts = a.drafts + excluded.drafts,
         valid_drafts = a.valid_drafts + excluded.valid_drafts,
         tool_runs = a.tool_runs + excluded.tool_runs,
         jobs_created = a.jobs_created + excluded.jobs_created,
         jobs_completed = a.jobs_completed + excluded.jobs_completed,
         jobs_failed = a.jobs_failed + excluded.jobs_failed;
  if e.type = 'DraftRecorded' then
    insert into activity_daily_drafts as a (owner_id, day, language, drafts, valid_drafts)
    values (v_owner, v_day, e.data ->> 'language', 1, v_valid)
    on conflict (owner_id, day, language) do update
       set drafts = a.drafts + 1, valid_drafts = a.valid_drafts + excluded.valid_drafts;
  end if;
end
$$;

select chronicle.register_projection(
  p_name => 'activity',
  p_version => 1,
  p_mode => 'async',
  p_handler => 'chronicle.project_activity',
  p_tables => array['activity_streams', 'activity_daily', 'activity_daily_drafts'],
  p_stream_categories => array['session', 'job'],
  p_description => 'Activity per owner and UTC day: sessions, messages, drafts (by language), tool runs, jobs');

-- An empty log: the async projection starts at the beginning.
select chronicle.refresh_projection_dispatch();

-- ----- analytics views: more of what people ask for ---------------------------------------

-- Appended columns only (create or replace keeps the existing ones, and their order).
create or replace view chronicle.session_summary as
select s.id as session_id,
       s.owner_id,
       s.title,
       s.status,
       s.parent_id,
       s.message_count,
       s.revision_count,
       s.draft_count,
       s.hole_count,
       s.file_count,
       s.tool_run_count,
       d.valid_drafts,
       d.invalid_drafts,
       case when s.draft_count > 0 then d.valid_drafts::double precision / s.draft_count end as draft_success_rate,
       h.avg_confidence as avg_hole_confidence,
       (select count(*) from chronicle.jobs j where j.session_id = s.id) as job_count,
       s.created_at,
       s.last_activity_at,
       extract(epoch from (s.last_activity_at - s.created_at)) as active_seconds,
       lm.role as last_message_role,
       left(lm.content, 200) as last_message_preview,
       lm.created_at as last_message_at
  from chronicle.sessions s
  cross join lateral (
    select count(*) filter (where dr.valid) as valid_drafts,
           count(*) filter (where not dr.valid) as invalid_drafts
      from chronicle.drafts dr
     where dr.session_id = s.id and s.effective @> dr.version) d
  cross join lateral (
    select avg(hr.confidence) as avg_confidence
      from chronicle.hole_resolutions hr
     where hr.session_id = s.id and s.effective @> hr.version) h
  left join lateral (
    select m.role, m.content, m.created_at
      from chronicle.messages m
     where m.session_id = s.id and s.effective @> m.version
     order by m.seq desc, m.version desc
     limit 1) lm on true;

create or replace view chronicle.user_analytics as
select o.owner_id,
       coalesce(s.sessions, 0) as sessions,
       coalesce(s.active_sessions, 0) as active_sessions,
       coalesce(s.archived_sessions, 0) as archived_sessions,
       coalesce(s.messages, 0) as messages,
       coalesce(s.revisions, 0) as revisions,
       coalesce(s.drafts, 0) as drafts,
       coalesce(s.holes, 0) as holes,
       coalesce(s.tool_runs, 0) as tool_runs,
       coalesce(j.jobs, 0) as jobs,
       coalesce(j.completed_jobs, 0) as completed_jobs,
       coalesce(j.failed_jobs, 0) as failed_jobs,
       greatest(s.last_activity_at, j.last_job_at) as last_activity_at,
       coalesce(d.valid_drafts, 0) as valid_drafts,
       case when coalesce(d.drafts, 0) > 0 then d.valid_drafts::double precision / d.drafts end as draft_validity_rate,
       coalesce(j.queued_jobs, 0) as queued_jobs,
       coalesce(j.running_jobs, 0) as running_jobs,
       coalesce(j.paused_jobs, 0) as paused_jobs,
       coalesce(j.cancelled_jobs, 0) as cancelled_jobs
  from (select owner_id from chronicle.sessions union select owner_id from chronicle.jobs) o
  left join (
    select owner_id,
           count(*) filter (where status <> 'deleted') as sessions,
           count(*) filter (where status = 'active') as active_sessions,
           count(*) filter (where status = 'archived') as archived_sessions,
           sum(message_count) filter (where status <> 'deleted') as messages,
           sum(revision_count) filter (where status <> 'deleted') as revisions,
           sum(draft_count) filter (where status <> 'deleted') as drafts,
           sum(hole_count) filter (where status <> 'deleted') as holes,
           sum(tool_run_count) filter (where status <> 'deleted') as tool_runs,
           max(last_activity_at) as last_activity_at
      from chronicle.sessions
     group by owner_id) s on s.owner_id = o.owner_id
  left join (
    select owner_id,
           count(*) as jobs,
           count(*) filter (where state = 'completed') as completed_jobs,
           count(*) filter (where state = 'failed') as failed_jobs,
           count(*) filter (where state = 'queued') as queued_jobs,
           count(*) filter (where state = 'running') as running_jobs,
           count(*) filter (where state = 'paused') as paused_jobs,
           count(*) filter (where state = 'cancelled') as cancelled_jobs,
           max(updated_at) as last_job_at
      from chronicle.jobs
     group by owner_id) j on j.owner_id = o.owner_id
  left join (
    select s2.owner_id,
           count(*) as drafts,
           count(*) filter (where dr.valid) as valid_drafts
      from chronicle.drafts dr join chronicle.sessions s2 on s2.id = dr.session_id
     where s2.effective @> dr.version and s2.status <> 'deleted'
     group by s2.owner_id) d on d.owner_id = o.owner_id;

create or replace view chronicle.job_stats as
select owner_id,
       job_type,
       count(*) as jobs,
       count(*) filter (where state = 'queued') as queued,
       count(*) filter (where state = 'running') as running,
       count(*) filter (where state = 'paused') as paused,
       count(*) filter (where state = 'completed') as completed,
       count(*) filter (where state = 'failed') as failed,
       count(*) filter (where state = 'cancelled') as cancelled,
       avg(extract(epoch from (finished_at - started_at))) filter (where state = 'completed') as avg_processing_seconds,
       max(created_at) as last_job_at,
       percentile_cont(0.95) within group (order by extract(epoch from (finished_at - started_at)))
         filter (where state = 'completed') as p95_processing_seconds
  from chronicle.jobs
 group by owner_id, job_type;

-- create or replace resets a view's options: the analytics views read with the caller's rights.
alter view chronicle.session_summary set (security_invoker = true);
alter view chronicle.user_analytics set (security_invoker = true);
alter view chronicle.job_stats set (security_invoker = true);

-- Direct Supabase readers see their own activity rows (see 20261123000300_row_level_security.sql).
do $$
declare
  t text;
begin
  if to_regprocedure('auth.uid()') is null then
    return;
  end if;
  foreach t in array array['activity_streams', 'activity_daily', 'activity_daily_drafts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format('create policy %I on chronicle.%I for select using (owner_id = (select auth.uid()))',
                   t || '_owner_reads', t);
    if exists (select 1 from pg_roles where rolname = 'authenticated') then
      execute format('grant select on chronicle.%I to authenticated', t);
    end if;
  end loop;
end
$$;

-- Row counts of tables in the chronicle schema (null for one that does not exist yet).
create function chronicle.projection_table_rows(p_tables text[]) returns table (name text, rows bigint)
language plpgsql stable as $$
declare
  t text;
begin
  foreach t in array p_tables loop
    name := t;
    rows := null;
    if to_regclass(format('chronicle.%I', t)) is not null then
      execute format('select count(*) from chronicle.%I', t) into rows;
    end if;
    return next;
  end loop;
end
$$;

-- ----- import: history brought over verbatim ----------------------------------------------

-- Appends exported events to a stream keeping their ids, versions and recorded_at, so the
-- projections in the target database build the same rows. Importing the same events again
-- writes nothing. The versions must continue the stream (CH409 otherwise); ids used by other
-- events are refused (CH410). Only `chronicle import` calls it: the API appends through
-- chronicle.append_events, which stamps recorded_at itself.
create function chronicle.import_events(
  p_stream_id text,
  p_events jsonb,
  p_owner_id uuid default null
) returns table (written integer, skipped integer)
language plpgsql as $$
declare
  v_count integer := jsonb_array_length(p_events);
  v_first integer := (p_events -> 0 ->> 'version')::integer;
  v_current integer;
  v_known integer;
  v_same integer;
  v_consecutive boolean;
begin
  if v_count = 0 then
    return query select 0, 0;
    return;
  end if;
  insert into chronicle.streams as s (stream_id, stream_type, version, owner_id)
  values (p_stream_id, split_part(p_stream_id, '-', 1), 0, p_owner_id)
  on conflict (stream_id) do nothing;
  select s.version into v_current from chronicle.streams s where s.stream_id = p_stream_id for update;

  select count(*)::integer,
         (count(*) filter (where e.stream_id = p_stream_id and e.stream_version = (x.elem ->> 'version')::integer
                             and e.type = x.elem ->> 'type' and e.data = x.elem -> 'data'))::integer
    into v_known, v_same
    from jsonb_array_elements(p_events) x(elem)
    join chronicle.events e on e.event_id = (x.elem ->> 'event_id')::uuid;
  if v_known = v_count and v_same = v_count then
    return query select 0, v_count;
    return;
  elsif v_known > 0 then
    raise exception 'event ids already used by different events' using errcode = 'CH410';
  end if;

  select bool_and((x.elem ->> 'version')::integer = v_first + x.ord::integer - 1)
    into v_consecutive
    from jsonb_array_elements(p_events) with ordinality x(elem, ord);
  if not v_consecutive then
    raise exception 'versions of % must be consecutive', p_stream_id using errcode = '22023';
  end if;
  if v_current <> v_first - 1 then
    raise exception 'stream % is at version %, the import continues at version %', p_stream_id, v_current, v_first
      using errcode = 'CH409',
            detail = jsonb_build_object('expected', v_first - 1, 'actual', v_current)::text;
  end if;

  insert into chronicle.events (stream_id, stream_version, event_id, type, schema_version, data, metadata, recorded_at)
  select p_stream_id, (x.elem ->> 'version')::integer, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
         coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
         coalesce(x.elem -> 'metadata', '{}'::jsonb), (x.elem ->> 'recorded_at')::timestamptz
    from jsonb_array_elements(p_events) with ordinality x(elem, ord)
   order by x.ord;
  update chronicle.streams s set version = v_current + v_count, updated_at = now() where s.stream_id = p_stream_id;
  perform pg_notify('chronicle_events', p_stream_id);
  return query select v_count, 0;
end
$$;
