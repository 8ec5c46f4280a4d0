-- Chronicle schema, area 3 of 7: the read models of sessions, jobs, files and sandboxes, and
-- the inline projections that keep them in step with the log.
--
-- The projections run inside the append's own transaction (the engine's AFTER INSERT
-- trigger), so an append is still one round trip and a reader sees its own writes. A
-- projection never re-checks business rules (the deciders did); it only folds events into
-- rows, deterministically, so a rebuild reproduces the same rows from the log. A stream's
-- row is created by its first event (SessionStarted or SessionForked, JobCreated,
-- FileUploaded, SandboxRegistered); events on a stream whose first event did not create a
-- row, and on streams of other kinds, are ignored. An event of a type with no read model, on
-- a stream that has a row, only advances that row's version.
--
-- Rollback: a session's effective history as of version X, E(X), is a set of versions kept
-- as an int4multirange (docs/DOMAIN.md). Content rows are never deleted; a row is effective
-- iff sessions.effective @> row.version.
--
-- Handlers name their tables without a schema (the engine points search_path at chronicle,
-- or at a shadow schema during a rebuild).

-- ----- sessions ---------------------------------------------------------------------------

create table chronicle.sessions (
  id               uuid primary key,
  owner_id         uuid not null,
  title            text,
  metadata         jsonb not null,
  status           text not null check (status in ('active', 'archived', 'deleted', 'expired')),
  version          integer not null,
  parent_id        uuid,
  parent_version   integer,
  external_key     text,
  -- E(version): the versions whose content is part of the current state.
  effective        int4multirange not null,
  message_count    integer not null default 0,
  revision_count   integer not null default 0,
  draft_count      integer not null default 0,
  hole_count       integer not null default 0,
  file_count       integer not null default 0,
  tool_run_count   integer not null default 0,
  -- The log cursor of the session's latest event.
  head_cursor      text not null,
  created_at       timestamptz not null,
  updated_at       timestamptz not null,
  last_activity_at timestamptz not null,
  archived_at      timestamptz,
  deleted_at       timestamptz,
  expired_at       timestamptz
)
-- Every event of a session updates its row (version, effective set, head, times, counters):
-- room on the page, and none of those columns indexed, keep that update HOT. (So there is no
-- index on updated_at or last_activity_at: the retention sweep, which runs every ten minutes
-- when a TTL is set, reads the active sessions' rows instead.)
with (fillfactor = 80);

create unique index sessions_owner_external_key_idx on chronicle.sessions (owner_id, external_key)
  where external_key is not null;
create index sessions_parent_idx on chronicle.sessions (parent_id, parent_version) where parent_id is not null;
-- sessions.list walks an owner's sessions newest first, keyed by (created_at, id).
create index sessions_owner_created_idx on chronicle.sessions (owner_id, created_at desc, id desc);

create table chronicle.session_rollbacks (
  session_id uuid not null,
  version    integer not null,
  to_version integer not null,
  primary key (session_id, version)
);

-- Every event that sets the title or the metadata (SessionStarted/Forked set both), so a
-- rollback can restore them from the latest effective one.
create table chronicle.session_updates (
  session_id   uuid not null,
  version      integer not null,
  title_set    boolean not null,
  title        text,
  metadata_set boolean not null,
  metadata     jsonb,
  primary key (session_id, version)
);

create table chronicle.messages (
  session_id uuid not null,
  message_id uuid not null,
  version    integer not null,
  seq        integer not null,
  role       text not null,
  content    text not null,
  metadata   jsonb not null,
  created_at timestamptz not null,
  primary key (session_id, message_id)
);

-- seq is reused after a rollback, so the list key is (seq, version) filtered by effective.
create index messages_session_seq_idx on chronicle.messages (session_id, seq, version);

create table chronicle.revisions (
  session_id  uuid not null,
  revision_id uuid not null,
  version     integer not null,
  number      integer not null,
  ir          jsonb not null,
  note        text,
  created_at  timestamptz not null,
  primary key (session_id, revision_id)
);

create index revisions_session_number_idx on chronicle.revisions (session_id, number, version);

create table chronicle.drafts (
  session_id      uuid not null,
  draft_id        uuid not null,
  version         integer not null,
  code            text not null,
  language        text not null,
  valid           boolean not null,
  metrics         jsonb not null,
  revision_number integer,
  created_at      timestamptz not null,
  primary key (session_id, draft_id)
);

create index drafts_session_version_idx on chronicle.drafts (session_id, version);

create table chronicle.hole_resolutions (
  session_id    uuid not null,
  resolution_id uuid not null,
  version       integer not null,
  hole_id       text not null,
  value         jsonb not null,
  confidence    double precision not null,
  created_at    timestamptz not null,
  primary key (session_id, resolution_id)
);

create index hole_resolutions_session_version_idx on chronicle.hole_resolutions (session_id, version);
create index hole_resolutions_session_hole_idx on chronicle.hole_resolutions (session_id, hole_id, version);

-- Attachments and detachments are both kept: whether a file is attached as of X depends on
-- which of them are in E(X) (see chronicle.attached_files).
create table chronicle.session_files (
  session_id  uuid not null,
  file_id     uuid not null,
  version     integer not null,
  sha256      text not null,
  name        text not null,
  mime_type   text not null,
  size        bigint not null,
  attached_at timestamptz not null,
  primary key (session_id, file_id, version)
);

create index session_files_session_version_idx on chronicle.session_files (session_id, version);

create table chronicle.session_file_detachments (
  session_id  uuid not null,
  file_id     uuid not null,
  version     integer not null,
  detached_at timestamptz not null,
  primary key (session_id, file_id, version)
);

create table chronicle.tool_runs (
  session_id  uuid not null,
  tool_run_id uuid not null,
  version     integer not null,
  tool        text not null,
  input       jsonb not null,
  output      jsonb not null,
  status      text not null,
  duration_ms bigint,
  error       text,
  created_at  timestamptz not null,
  primary key (session_id, tool_run_id)
);

create index tool_runs_session_version_idx on chronicle.tool_runs (session_id, version);

create table chronicle.checkpoints (
  id            uuid primary key,
  session_id    uuid not null,
  -- The session version the checkpoint marks; event_version is the checkpoint event's own.
  version       integer not null,
  event_version integer not null,
  label         text,
  cursor        text not null,
  created_at    timestamptz not null
);

create index checkpoints_session_version_idx on chronicle.checkpoints (session_id, version);

-- ----- files and blobs --------------------------------------------------------------------

create table chronicle.files (
  id         uuid primary key,
  owner_id   uuid not null,
  sha256     text not null,
  name       text not null,
  mime_type  text not null,
  size       bigint not null,
  version    integer not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);

create index files_owner_created_idx on chronicle.files (owner_id, created_at desc);
create index files_sha256_idx on chronicle.files (sha256);

-- Not a read model: the bytes of files, stored once under their SHA-256 and written directly
-- (events carry the hash, never the bytes). A rebuild leaves this table alone.
create table chronicle.blobs (
  sha256     text primary key check (sha256 ~ '^[0-9a-f]{64}$'),
  size       bigint not null check (size = octet_length(content)),
  content    bytea not null,
  created_at timestamptz not null default now()
);

-- ----- jobs, tasks, artifacts -------------------------------------------------------------

create table chronicle.jobs (
  id               uuid primary key,
  owner_id         uuid not null,
  session_id       uuid,
  parent_job_id    uuid,
  job_type         text not null,
  state            text not null
                   check (state in ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
  input            jsonb not null,
  output           jsonb,
  error            text,
  error_details    jsonb,
  progress         double precision,
  progress_message text,
  version          integer not null,
  created_at       timestamptz not null,
  updated_at       timestamptz not null,
  started_at       timestamptz,
  finished_at      timestamptz
);

create index jobs_owner_state_created_idx on chronicle.jobs (owner_id, state, created_at desc);
create index jobs_owner_created_idx on chronicle.jobs (owner_id, created_at desc);
create index jobs_session_created_idx on chronicle.jobs (session_id, created_at) where session_id is not null;
create index jobs_parent_idx on chronicle.jobs (parent_job_id) where parent_job_id is not null;
create index jobs_state_created_idx on chronicle.jobs (state, created_at);

create table chronicle.tasks (
  job_id     uuid not null,
  task_id    uuid not null,
  name       text not null,
  status     text not null,
  input      jsonb not null,
  output     jsonb,
  error      text,
  progress   double precision,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  primary key (job_id, task_id)
);

-- A job's tasks in page order: a page reads a page, not all of the job's tasks to sort them.
create index tasks_job_created_idx on chronicle.tasks (job_id, created_at, task_id);

create table chronicle.artifacts (
  job_id      uuid not null,
  artifact_id uuid not null,
  file_id     uuid not null,
  session_id  uuid,
  kind        text not null,
  name        text not null,
  sha256      text not null,
  mime_type   text not null,
  size        bigint not null,
  created_at  timestamptz not null,
  primary key (job_id, artifact_id)
);

create index artifacts_session_created_idx on chronicle.artifacts (session_id, created_at)
  where session_id is not null;
create index artifacts_file_idx on chronicle.artifacts (file_id);
-- A job's artifacts in page order, as its tasks.
create index artifacts_job_created_idx on chronicle.artifacts (job_id, created_at, artifact_id);

-- ----- sandboxes --------------------------------------------------------------------------

create table chronicle.sandboxes (
  id          uuid primary key,
  session_id  uuid not null,
  owner_id    uuid not null,
  provider    text not null,
  external_id text not null,
  url         text,
  status      text not null,
  metadata    jsonb not null,
  version     integer not null,
  created_at  timestamptz not null,
  updated_at  timestamptz not null,
  started_at  timestamptz,
  ended_at    timestamptz
);

create index sandboxes_session_created_idx on chronicle.sandboxes (session_id, created_at);
create index sandboxes_owner_status_updated_idx on chronicle.sandboxes (owner_id, status, updated_at desc);
create index sandboxes_status_updated_idx on chronicle.sandboxes (status, updated_at);

-- The API roles may read the read models (subject to RLS policies added later) but only the
-- projection writes them.
do $$
declare
  r text;
  t text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      foreach t in array array['sessions', 'session_rollbacks', 'session_updates', 'messages',
                               'revisions', 'drafts', 'hole_resolutions', 'session_files',
                               'session_file_detachments', 'tool_runs', 'checkpoints', 'files',
                               'blobs', 'jobs', 'tasks', 'artifacts', 'sandboxes'] loop
        execute format('revoke insert, update, delete, truncate on chronicle.%I from %I', t, r);
      end loop;
    end if;
  end loop;
end
$$;

-- ----- helpers ----------------------------------------------------------------------------

-- The uuid of a stream id: 'session-<uuid>' → <uuid>.
create function chronicle.stream_uuid(p_stream_id text) returns uuid
language sql immutable strict as $$
  select substr(p_stream_id, strpos(p_stream_id, '-') + 1)::uuid
$$;

-- Where an event is, as the read models record it (sessions.head_cursor, checkpoints.cursor):
-- its global position. Informational: the log's order is chronicle.event_seq, which an inline
-- projection runs too early to know. Rows written before the log had that order hold
-- '<transaction id>:<global position>'.
create function chronicle.event_cursor(e chronicle.events) returns text
language sql immutable as $$
  select e.global_position::text
$$;

-- E(p_at) of a session, walking the rollback chain backwards (docs/DOMAIN.md):
--   ranges = []; cur = X
--   loop: R = the latest rollback with version <= cur   (none → ranges += [1, cur]; stop)
--         ranges += [R, cur]; cur = R.toVersion
create function chronicle.rm_effective_versions(p_session_id uuid, p_at integer) returns int4multirange
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
create function chronicle.rm_attached_files(p_session_id uuid, p_effective int4multirange)
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
create function chronicle.recount_session(p_session_id uuid) returns void
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

create function chronicle.start_session(e chronicle.events) returns void
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
create function chronicle.fork_session(e chronicle.events) returns void
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
create function chronicle.roll_back_session(e chronicle.events) returns void
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

create function chronicle.project_session(e chronicle.events) returns void
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
$$;

-- The inline fold of one statement's events set-wise, when all of them are messages of
-- sessions (a group commit's appends) and the sessions projection is the only inline one that
-- folds sessions, at the version whose set-wise fold chronicle.project_batch shares
-- (02_projection_engine.sql): one insert into messages and one update per session, where
-- chronicle.project_session makes an insert and an update per event. Returns false, having
-- done nothing, otherwise. The result equals chronicle.project_session's, event by event, in
-- version order (the engine's tests compare).
create function chronicle.project_session_messages(p_events chronicle.events[]) returns boolean
language plpgsql as $$
begin
  if exists (select 1 from unnest(p_events) x
              where x.type <> 'MessageAppended' or split_part(x.stream_id, '-', 1) <> 'session')
     or not chronicle.project_batch_setwise('sessions')
     or exists (select 1 from chronicle.projections p
                 where p.mode = 'inline' and p.name <> 'sessions'
                   and (p.stream_categories is null or 'session' = any (p.stream_categories)))
     or not exists (select 1 from chronicle.projections p where p.name = 'sessions' and p.mode = 'inline') then
    return false;
  end if;

  with b as (
    select s.id as session_id, x.stream_version as version, x.data, x.recorded_at,
           chronicle.event_cursor(x) as cursor
      from unnest(p_events) x
      join sessions s on s.id = chronicle.stream_uuid(x.stream_id)
  ),
  m as (
    insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
    select b.session_id, (b.data ->> 'messageId')::uuid, b.version, (b.data ->> 'seq')::integer, b.data ->> 'role',
           b.data ->> 'content', b.data -> 'metadata', coalesce((b.data ->> 'createdAt')::timestamptz, b.recorded_at)
      from b order by b.session_id, b.version
  )
  update sessions s
     set version = a.last_version,
         effective = s.effective + a.versions,
         head_cursor = a.last_cursor,
         updated_at = a.last_at,
         last_activity_at = a.last_at,
         message_count = s.message_count + a.messages
    from (
      select b.session_id,
             max(b.version) as last_version,
             range_agg(int4range(b.version, b.version + 1)) as versions,
             (array_agg(b.cursor order by b.version desc))[1] as last_cursor,
             (array_agg(b.recorded_at order by b.version desc))[1] as last_at,
             count(*)::integer as messages
        from b
       group by b.session_id) a
   where s.id = a.session_id;
  return true;
end
$$;

-- ----- erasure ------------------------------------------------------------------------------

-- An event's payload with its content blanked: text, JSON values and names a person wrote or
-- an agent produced. Ids, numbers, roles, statuses, hashes and times stay, so the event still
-- decodes as its type and every fold, projection and rebuild still runs over it. Only keys the
-- payload has are replaced (an update that did not set the title still does not). A LangGraph
-- checkpoint keeps its ids, parent and channel versions and loses its bytes, metadata and
-- channel values; pending writes go.
create function chronicle.redact_event_data(p_type text, p_data jsonb) returns jsonb
language sql immutable as $$
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
$$;

-- Whether an event records the purge of its stream (chronicle.purge_*_stream, then the
-- service's audit record): the one list of them.
create function chronicle.is_purge_event(p_type text) returns boolean
language sql immutable as $$
  select p_type in ('SessionPurged', 'FilePurged', 'JobPurged', 'SandboxPurged', 'GraphThreadPurged')
$$;

-- Whether a purge of the stream was recorded at or after version p_version: with 1, whether
-- the stream was ever purged; with a read model's version, whether it was purged since its
-- last event (a job or a sandbox goes on after its purge, a LangGraph thread may start again).
-- The Purge service asks it of the read models' rows, so that it never reads the log itself.
create function chronicle.stream_purged_since(p_stream_id text, p_version integer) returns boolean
language sql stable security definer set search_path = pg_catalog, chronicle, pg_temp as $$
  select exists (select 1 from chronicle.events e
                  where e.stream_id = p_stream_id and e.stream_version >= p_version
                    and chronicle.is_purge_event(e.type))
$$;

-- The strings of a payload that look like a sha256 in hex: the contents in the blob store
-- (file bytes, large values) it names.
create function chronicle.payload_hashes(p_data jsonb) returns setof text
language sql immutable as $$
  select h.value #>> '{}' from jsonb_path_query(p_data, 'strict $.**') as h(value)
   where jsonb_typeof(h.value) = 'string' and h.value #>> '{}' ~ '^[0-9a-f]{64}$'
$$;

-- The contents in the blob store the payloads of these streams name: what a purge gathers
-- before it redacts them, to delete afterwards what nothing unpurged references.
create function chronicle.stream_blob_hashes(p_stream_ids text[]) returns setof text
language sql stable security definer set search_path = pg_catalog, chronicle, pg_temp as $$
  select distinct h.sha256
    from chronicle.events e, chronicle.payload_hashes(e.data) as h(sha256)
   where e.stream_id = any (p_stream_ids)
$$;

-- Deletes the contents among p_hashes that nothing unpurged references any more: no stored
-- file that is not purged, no event whose stream was not purged since (an event recorded after
-- its stream's purge, a job's artifact for one, still holds its content). Returns how many
-- went. The Purge service calls it in the purge's transaction, after the redaction.
create function chronicle.delete_unreferenced_blobs(p_hashes text[]) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

-- Redacts the payload of every event of a stream (chronicle.redact_event_data) and drops what
-- its metadata kept of the request (idempotency key, fingerprint): the one statement that may
-- change events (see chronicle.reject_event_mutation), shared by the purge functions below and
-- chronicle.purge_graph_stream. Returns the number of events redacted (the stream's version).
-- Never the service's to call on its own: a purge function records what it did.
create function chronicle.redact_stream(p_stream_id text) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.redact_stream(text) from public;

-- Erases a session's content irreversibly: the payload of every event of its stream is
-- redacted (chronicle.redact_stream: metadata keeps only what is not content), and its
-- read-model rows are made again from the redacted events by the projection itself, so they
-- are exactly what a rebuild makes. Returns the number of events redacted (the stream's
-- version). The caller records the purge as a SessionPurged event in the same transaction,
-- and purges the session's forks too (their rows copy its content). The one path that may
-- change an event (see chronicle.reject_event_mutation): for the service, never the API roles.
create function chronicle.purge_session_stream(p_session_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_session_stream(uuid) from public;

-- The same erasure in every completed point-in-time snapshot (an analytics_asof_<label> schema,
-- 02_projection_engine.sql) and every build in progress (a rebuild's shadow schema, which its
-- swap makes live; a snapshot being built): they copy the read models, so the session's rows
-- there (sessions by id, every table with a session_id) are deleted and, where the build holds
-- the sessions projection, made again from the redacted events it includes (up to a
-- snapshot's bound, or as far as a build in progress got), as a build of the redacted log
-- would hold them. A snapshot made before the log had seqs cannot say which events it
-- includes: the session's rows just go. Returns the number of builds it went through. Called
-- by chronicle.purge_session_stream only.
create function chronicle.purge_session_snapshots(p_session_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_session_snapshots(uuid) from public;

-- The same erasure in every completed snapshot and build in progress for a job ('job'), a
-- LangGraph thread ('graph'), a stored file ('file') or a sandbox ('sandbox'): the stream's rows
-- there (jobs, graph_threads, files or sandboxes by id, every table with a job_id or graph_id) are deleted and, where
-- the build holds the jobs, graph or files projection, made again from the redacted events it
-- includes. Returns the number of builds it went through. Called by chronicle.purge_job_stream,
-- chronicle.purge_graph_stream and chronicle.purge_file_stream only.
create function chronicle.purge_stream_snapshots(p_category text, p_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_stream_snapshots(text, uuid) from public;

-- The same for a stored file (an owner's erasure): its upload's name is redacted and its row
-- made again from the redacted events (in snapshots and builds in progress too); the caller records FilePurged and deletes the bytes
-- nothing unpurged references any more.
create function chronicle.purge_file_stream(p_file_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_file_stream(uuid) from public;

-- The same for a job (an owner's erasure, or its session's): its input, output, errors,
-- progress messages, tasks' inputs and outputs and artifacts' names are redacted and its rows
-- (the job, its tasks and artifacts) made again from the redacted events. The job keeps its
-- state. Snapshots and builds in progress lose its text too (chronicle.purge_stream_snapshots).
-- The caller records JobPurged in the same transaction.
create function chronicle.purge_job_stream(p_job_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_job_stream(uuid) from public;

-- The same for a sandbox (an owner's erasure, or its session's): its metadata, URLs and
-- reasons are redacted and its row made again; it keeps its status. The caller records
-- SandboxPurged in the same transaction.
create function chronicle.purge_sandbox_stream(p_sandbox_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, chronicle, pg_temp as $$
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
$$;

revoke all on function chronicle.purge_sandbox_stream(uuid) from public;

-- ----- job streams ------------------------------------------------------------------------

create function chronicle.project_job(e chronicle.events) returns void
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

create function chronicle.project_file(e chronicle.events) returns void
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

create function chronicle.project_sandbox(e chronicle.events) returns void
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
create function chronicle.effective_versions(p_session_id uuid, p_at integer) returns int4multirange
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
create function chronicle.rebuild_read_models() returns bigint
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

-- ----- registration -------------------------------------------------------------------------

select chronicle.register_projection(
  p_name => 'sessions',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_session',
  p_tables => array['sessions', 'session_rollbacks', 'session_updates', 'messages', 'revisions', 'drafts',
                    'hole_resolutions', 'session_files', 'session_file_detachments', 'tool_runs', 'checkpoints'],
  p_stream_categories => array['session'],
  p_description => 'Sessions and their content, with effective history for as-of reads and rollback');

select chronicle.register_projection(
  p_name => 'jobs',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_job',
  p_tables => array['jobs', 'tasks', 'artifacts'],
  p_stream_categories => array['job'],
  p_description => 'Jobs with their tasks and artifacts');

select chronicle.register_projection(
  p_name => 'files',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_file',
  p_tables => array['files'],
  p_stream_categories => array['file'],
  p_description => 'Uploaded files (their bytes live in chronicle.blobs, which no projection writes)');

select chronicle.register_projection(
  p_name => 'sandboxes',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_sandbox',
  p_tables => array['sandboxes'],
  p_stream_categories => array['sandbox'],
  p_description => 'Execution sandboxes and their status');
