-- Chronicle's baseline: the schema of supabase/schemas/*.sql as of 2026-12-04, the files
-- concatenated in order. Every database starts here; the migrations after it change it.
--
-- Frozen: never edit it (the runner refuses a database whose applied file changed). To change
-- the schema, edit supabase/schemas and add a migration (README, "Changing the schema").
-- Databases made by the twelve pre-release migrations it replaces (20261123000000_event_log
-- … 20261124002300_status_row_estimates) describe the same database and are recorded as
-- having applied it, on their next start.

-- ===== schemas/01_log.sql =====

-- Chronicle schema, area 1 of 7: the append-only event log.
--
-- Everything Chronicle knows is an event in chronicle.events. Streams group events
-- ('session-<uuid>', 'job-<uuid>'); chronicle.streams holds one row per stream with its
-- current version and owner. Read models are derived from the log (later files).
--
-- This directory is the schema as it is now, each object defined once; the files are
-- applied in name order. supabase/migrations holds the history that gets an existing
-- database here (README: "Changing the schema").

create schema if not exists chronicle;

create table chronicle.streams (
  stream_id   text primary key
              check (stream_id ~ '^[a-z][a-z0-9_]{0,62}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
  stream_type text not null,
  version     integer not null default 0 check (version >= 0),
  owner_id    uuid,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

create index streams_owner_idx on chronicle.streams (owner_id, stream_type, updated_at desc);

create table chronicle.events (
  global_position bigint generated always as identity primary key,
  -- The id of the writing transaction. Readers of the whole log only read events whose
  -- transaction is older than every transaction still running, so an event that commits
  -- late can never be skipped (identity values are handed out at insert, not at commit).
  transaction_id  xid8 not null default pg_current_xact_id(),
  stream_id       text not null references chronicle.streams (stream_id),
  stream_version  integer not null check (stream_version > 0),
  event_id        uuid not null unique,
  type            text not null check (type ~ '^[A-Z][A-Za-z0-9]{0,99}$'),
  schema_version  smallint not null default 1 check (schema_version > 0),
  data            jsonb not null,
  metadata        jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  recorded_at     timestamptz not null default now(),
  unique (stream_id, stream_version)
);

-- The resume order of readers of the whole log.
create index events_tx_position_idx on chronicle.events (transaction_id, global_position);
create index events_type_tx_position_idx on chronicle.events (type, transaction_id, global_position);

-- Guarantee 1: the log is append-only. Rows can be neither changed nor removed.
create function chronicle.reject_event_mutation() returns trigger
language plpgsql as $$
begin
  raise exception 'chronicle.events is append-only: % is not allowed', tg_op
    using errcode = 'CH001',
          hint = 'Record a new event (for example a rollback) instead of changing history.';
end
$$;

create trigger events_no_update_delete
  before update or delete on chronicle.events
  for each row execute function chronicle.reject_event_mutation();

create trigger events_no_truncate
  before truncate on chronicle.events
  for each statement execute function chronicle.reject_event_mutation();

-- On Supabase, the API roles may read the log (subject to RLS policies added later) but
-- never write to it directly: every write goes through chronicle.append_events.
do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke insert, update, delete, truncate on chronicle.events from %I', r);
      execute format('revoke insert, update, delete, truncate on chronicle.streams from %I', r);
    end if;
  end loop;
end
$$;

-- ----- the append ---------------------------------------------------------------------------

-- The append path (guarantees 2, 3 and 5): one call checks the expected version, detects a
-- retried batch, inserts the events, bumps the stream and notifies followers.
--
-- p_expected_version: >= 0 exact version (0 = the stream has no events yet),
--                     -1 any, -2 the stream must not exist, -3 the stream must exist.
-- p_events: a JSON array of {event_id, type, schema_version, data, metadata}.
--
-- Failures raise with a Chronicle SQLSTATE so the whole transaction rolls back:
--   CH409 version conflict   (detail: {"expected": ..., "actual": ...})
--   CH410 idempotency clash  (detail: {"event_ids": [...]})
create function chronicle.append_events(
  p_stream_id text,
  p_stream_type text,
  p_expected_version integer,
  p_events jsonb,
  p_owner_id uuid,
  p_notify boolean
) returns table (
  event_id uuid,
  stream_version integer,
  global_position text,
  transaction_id text,
  duplicate boolean
)
language plpgsql as $$
declare
  v_count integer := jsonb_array_length(p_events);
  v_current integer;
  v_existed boolean;
  v_known integer;
  v_same boolean;
  v_offsets integer;
begin
  if v_count = 0 then
    raise exception 'an append needs at least one event' using errcode = '22023';
  end if;

  -- Lock the stream row; create it first when it is missing (concurrent creators wait for
  -- each other in the insert, then both lock).
  select s.version into v_current
    from chronicle.streams s
   where s.stream_id = p_stream_id
     for update;
  if not found then
    insert into chronicle.streams as s (stream_id, stream_type, version, owner_id)
    values (p_stream_id, p_stream_type, 0, p_owner_id)
    on conflict (stream_id) do nothing;
    select s.version into v_current
      from chronicle.streams s
     where s.stream_id = p_stream_id
       for update;
  end if;
  v_existed := v_current > 0;

  -- Idempotency before the version check, as before; the detailed analysis only when some
  -- event id is already known.
  if exists (
    select 1 from chronicle.events e
     where e.event_id in (select (x ->> 'event_id')::uuid from jsonb_array_elements(p_events) x)
  ) then
    select count(*)::integer,
           coalesce(bool_and(e.stream_id = p_stream_id and e.type = x.elem ->> 'type'
                             and e.data = x.elem -> 'data'), false),
           count(distinct e.stream_version - x.ord)::integer
      into v_known, v_same, v_offsets
    from jsonb_array_elements(p_events) with ordinality as x(elem, ord)
    join chronicle.events e on e.event_id = (x.elem ->> 'event_id')::uuid;

    if v_known = v_count and v_same and v_offsets = 1 then
      return query
        select e.event_id, e.stream_version, e.global_position::text, e.transaction_id::text, true
        from chronicle.events e
        join jsonb_array_elements(p_events) with ordinality as x(elem, ord)
          on e.event_id = (x.elem ->> 'event_id')::uuid
        order by x.ord;
      return;
    end if;
    raise exception 'event ids already used by a different append'
      using errcode = 'CH410',
            detail = (
              select jsonb_build_object('event_ids', jsonb_agg(e.event_id))::text
              from chronicle.events e
              where e.event_id in (select (y ->> 'event_id')::uuid from jsonb_array_elements(p_events) y)
            );
  end if;

  if (p_expected_version >= 0 and v_current <> p_expected_version)
     or (p_expected_version = -2 and v_existed)
     or (p_expected_version = -3 and not v_existed) then
    raise exception 'stream % is at version %, expected %', p_stream_id, v_current,
        case p_expected_version when -2 then 'no stream' when -3 then 'an existing stream'
             else p_expected_version::text end
      using errcode = 'CH409',
            detail = jsonb_build_object('expected', p_expected_version, 'actual', v_current)::text;
  end if;

  update chronicle.streams s
     set version = v_current + v_count,
         updated_at = now()
   where s.stream_id = p_stream_id;

  return query
    insert into chronicle.events as e
      (stream_id, stream_version, event_id, type, schema_version, data, metadata)
    select p_stream_id, v_current + x.ord::integer, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
           coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
           coalesce(x.elem -> 'metadata', '{}'::jsonb)
    from jsonb_array_elements(p_events) with ordinality as x(elem, ord)
    order by x.ord
    returning e.event_id, e.stream_version, e.global_position::text, e.transaction_id::text, false;

  if p_notify then
    -- Delivered at commit; followers re-read from their cursor, so the payload is a hint.
    perform pg_notify('chronicle_events', p_stream_id);
  end if;
end
$$;

-- The five-argument entry point notifies at commit (a caller's own transaction).
create function chronicle.append_events(
  p_stream_id text,
  p_stream_type text,
  p_expected_version integer,
  p_events jsonb,
  p_owner_id uuid default null
) returns table (
  event_id uuid,
  stream_version integer,
  global_position text,
  transaction_id text,
  duplicate boolean
)
language plpgsql as $$
begin
  return query
    select * from chronicle.append_events(p_stream_id, p_stream_type, p_expected_version, p_events,
                                          p_owner_id, true);
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

-- ===== schemas/02_projection_engine.sql =====

-- Chronicle schema, area 2 of 7: the projection engine.
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
-- The read models have no foreign keys: the projection is their only writer, and a swapped
-- table could not keep them.
--
-- The dispatchers the trigger and the builds call, chronicle.project(e) and
-- chronicle.project_selected(e, names), are generated from the registry by
-- chronicle.refresh_projection_dispatch(); the generated text of the built-in ones is
-- 90_dispatch.sql.

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
  error           text,
  -- Snapshots: {"<projection>": <version>} of the definitions they were built with.
  versions        jsonb,
  -- Rebuilds from a snapshot: the snapshot's run, the events its tables already hold, and
  -- when they were copied into the shadow schema (null until then).
  source_run      uuid,
  events_seeded   bigint not null default 0,
  seeded_at       timestamptz
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
create function chronicle.project_event() returns trigger
language plpgsql set search_path = chronicle, pg_temp as $$
begin
  perform chronicle.project(new);
  return null;
end
$$;

-- Row triggers fire in insert order, so a batch is projected in stream-version order, and a
-- failing projection rolls back the whole append.
create trigger events_project
  after insert on chronicle.events
  for each row execute function chronicle.project_event();

-- ----- builds: rebuilds and snapshots ----------------------------------------------------

-- The tables among p_tables whose columns (names and types, in order) in p_schema are not
-- those of the live table in chronicle, or that p_schema lacks: a snapshot whose tables no
-- longer match the live definitions cannot seed a rebuild.
create function chronicle.projection_tables_mismatch(p_schema text, p_tables text[]) returns text[]
language sql stable as $$
  select coalesce(array_agg(t order by t), '{}')
    from unnest(p_tables) t
   where to_regclass(format('%I.%I', p_schema, t)) is null
      or (select array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
            from pg_attribute a
           where a.attrelid = format('%I.%I', p_schema, t)::regclass and a.attnum > 0 and not a.attisdropped)
         is distinct from
         (select array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
            from pg_attribute a
           where a.attrelid = format('chronicle.%I', t)::regclass and a.attnum > 0 and not a.attisdropped)
$$;

-- Creates the run's schema and, in it, an empty copy of every table of its projections; for a
-- rebuild from a snapshot, fills them with the snapshot's rows, once. One transaction, and
-- idempotent, so a resumed run can call it again.
create function chronicle.prepare_projection_build(p_run uuid) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_source chronicle.projection_runs;
  t text;
  v_columns text;
begin
  select * into r from chronicle.projection_runs where id = p_run for update;
  execute format('create schema if not exists %I', r.target_schema);
  for t in select unnest(p.tables) from chronicle.projections p where p.name = any (r.projections) loop
    if to_regclass(format('%I.%I', r.target_schema, t)) is null then
      execute format('create table %I.%I (like chronicle.%I including all)', r.target_schema, t, t);
    end if;
  end loop;
  if r.source_run is not null and r.seeded_at is null then
    -- The engine refuses to drop a snapshot a rebuild has yet to copy; this only guards
    -- against a schema removed by hand.
    select * into v_source from chronicle.projection_runs x where x.id = r.source_run;
    if v_source.state is distinct from 'completed' then
      raise exception 'snapshot % that run % starts from is gone', coalesce(v_source.label, r.source_run::text), p_run
        using errcode = 'P0002';
    end if;
    for t in select unnest(p.tables) from chronicle.projections p where p.name = any (r.projections) loop
      select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
        into v_columns
        from pg_attribute a
       where a.attrelid = format('%I.%I', r.target_schema, t)::regclass and a.attnum > 0 and not a.attisdropped
         and a.attgenerated = '';
      execute format('insert into %I.%I (%s) select %s from %I.%I', r.target_schema, t, v_columns, v_columns,
                     v_source.target_schema, t);
    end loop;
    update chronicle.projection_runs x set seeded_at = now(), updated_at = now() where x.id = p_run;
  end if;
  update chronicle.projection_runs
     set phase = case when phase = 'preparing' then 'copying' else phase end, updated_at = now()
   where id = p_run;
end
$$;

-- A rebuild or snapshot applies events in batches of thousands. Projecting them one by one
-- updates a session's row once per event, inside one transaction, which is what made builds
-- slow. chronicle.project_batch() projects a batch with the same result, faster:
--   * sessions: content events (messages, revisions, drafts, hole resolutions, tool runs) of
--     sessions that have no other kind of event in the batch are inserted set-wise, and each
--     such session's row is updated once (version, effective set, head, times, counters);
--     every other session event goes through the per-event handler, in order;
--   * activity: counts are sums, so a batch is folded with one upsert per owner and day;
--   * every other projection: the per-event handler, in order.
-- The engine's tests compare the result with the stop-the-world per-event rebuild.

create function chronicle.project_batch(p_batch chronicle.events[], p_names text[]) returns void
language plpgsql as $$
declare
  v_simple constant text[] := array['MessageAppended', 'RevisionAdded', 'DraftRecorded', 'HoleResolved',
                                    'ToolRunRecorded'];
  v_fast_sessions boolean := 'sessions' = any (p_names);
  v_fast_activity boolean := 'activity' = any (p_names);
  v_rest text[] := array(select x from unnest(p_names) x where x not in ('sessions', 'activity'));
  v_with_sessions text[] := array_append(array(select x from unnest(p_names) x where x <> 'activity'), 'sessions');
  -- The stream categories the per-event projections care about ('*': every one).
  v_rest_categories text[] := array(
    select coalesce(c, '*') from chronicle.projections p
      left join lateral unnest(p.stream_categories) c on true
     where p.name = any (v_rest));
  v_any_category boolean;
  e chronicle.events;
  v_cut integer;
begin
  v_any_category := '*' = any (v_rest_categories);
  if v_fast_sessions then
    -- Per session, the last version in this batch that is not plain content: its events up to
    -- there go through the per-event handler, in order; the plain content after it is folded
    -- set-wise afterwards. A session forked from in this batch goes wholly per event (the fork
    -- copies its content as of a version, so that content must be there first).
    create temp table if not exists chronicle_batch_cut (session_id uuid primary key, cut integer not null)
      on commit drop;
    truncate chronicle_batch_cut;
    insert into chronicle_batch_cut
    select chronicle.stream_uuid(x.stream_id), max(x.stream_version)
      from unnest(p_batch) x
     where split_part(x.stream_id, '-', 1) = 'session' and x.type <> all (v_simple)
     group by 1
    on conflict (session_id) do nothing;
    insert into chronicle_batch_cut
    select distinct (x.data ->> 'parentId')::uuid, 2147483647
      from unnest(p_batch) x
     where x.type = 'SessionForked' and split_part(x.stream_id, '-', 1) = 'session'
    on conflict (session_id) do update set cut = 2147483647;
  end if;

  -- In order, one event at a time: every projection but the set-wise ones.
  foreach e in array p_batch loop
    if v_fast_sessions and split_part(e.stream_id, '-', 1) = 'session' then
      select c.cut into v_cut from chronicle_batch_cut c where c.session_id = chronicle.stream_uuid(e.stream_id);
      if e.type <> all (v_simple) or e.stream_version <= coalesce(v_cut, 0) then
        perform chronicle.project_selected(e, v_with_sessions);
        continue;
      end if;
    end if;
    if v_any_category or split_part(e.stream_id, '-', 1) = any (v_rest_categories) then
      perform chronicle.project_selected(e, v_rest);
    end if;
  end loop;

  if v_fast_sessions then
    create temp table if not exists chronicle_fast_batch (
      session_id uuid, version integer, type text, data jsonb, recorded_at timestamptz, cursor text
    ) on commit drop;
    truncate chronicle_fast_batch;
    insert into chronicle_fast_batch
    select s.id, x.stream_version, x.type, x.data, x.recorded_at, chronicle.event_cursor(x)
      from unnest(p_batch) x
      join sessions s on s.id = chronicle.stream_uuid(x.stream_id)
      left join chronicle_batch_cut c on c.session_id = s.id
     where split_part(x.stream_id, '-', 1) = 'session' and x.type = any (v_simple)
       and x.stream_version > coalesce(c.cut, 0);

    insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
    select b.session_id, (b.data ->> 'messageId')::uuid, b.version, (b.data ->> 'seq')::integer, b.data ->> 'role',
           b.data ->> 'content', b.data -> 'metadata', coalesce((b.data ->> 'createdAt')::timestamptz, b.recorded_at)
      from chronicle_fast_batch b where b.type = 'MessageAppended' order by b.session_id, b.version;
    insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
    select b.session_id, (b.data ->> 'revisionId')::uuid, b.version, (b.data ->> 'number')::integer, b.data -> 'ir',
           b.data ->> 'note', b.recorded_at
      from chronicle_fast_batch b where b.type = 'RevisionAdded' order by b.session_id, b.version;
    insert into drafts (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
    select b.session_id, (b.data ->> 'draftId')::uuid, b.version, b.data ->> 'code', b.data ->> 'language',
           (b.data ->> 'valid')::boolean, b.data -> 'metrics', (b.data ->> 'revisionNumber')::integer, b.recorded_at
      from chronicle_fast_batch b where b.type = 'DraftRecorded' order by b.session_id, b.version;
    insert into hole_resolutions (session_id, resolution_id, version, hole_id, value, confidence, created_at)
    select b.session_id, (b.data ->> 'resolutionId')::uuid, b.version, b.data ->> 'holeId', b.data -> 'value',
           (b.data ->> 'confidence')::double precision, b.recorded_at
      from chronicle_fast_batch b where b.type = 'HoleResolved' order by b.session_id, b.version;
    insert into tool_runs (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
    select b.session_id, (b.data ->> 'toolRunId')::uuid, b.version, b.data ->> 'tool', b.data -> 'input',
           b.data -> 'output', b.data ->> 'status', (b.data ->> 'durationMs')::bigint, b.data ->> 'error', b.recorded_at
      from chronicle_fast_batch b where b.type = 'ToolRunRecorded' order by b.session_id, b.version;

    update sessions s
       set version = a.last_version,
           effective = s.effective + a.versions,
           head_cursor = a.last_cursor,
           updated_at = a.last_at,
           last_activity_at = a.last_at,
           message_count = s.message_count + a.messages,
           revision_count = s.revision_count + a.revisions,
           draft_count = s.draft_count + a.drafts,
           hole_count = s.hole_count + a.holes,
           tool_run_count = s.tool_run_count + a.tool_runs
      from (
        select b.session_id,
               max(b.version) as last_version,
               range_agg(int4range(b.version, b.version + 1)) as versions,
               (array_agg(b.cursor order by b.version desc))[1] as last_cursor,
               (array_agg(b.recorded_at order by b.version desc))[1] as last_at,
               (count(*) filter (where b.type = 'MessageAppended'))::integer as messages,
               (count(*) filter (where b.type = 'RevisionAdded'))::integer as revisions,
               (count(*) filter (where b.type = 'DraftRecorded'))::integer as drafts,
               (count(*) filter (where b.type = 'HoleResolved'))::integer as holes,
               (count(*) filter (where b.type = 'ToolRunRecorded'))::integer as tool_runs
          from chronicle_fast_batch b
         group by b.session_id) a
     where s.id = a.session_id;
  end if;

  if v_fast_activity then
    insert into activity_streams (stream_id, owner_id, kind)
    select x.stream_id, (x.data ->> 'ownerId')::uuid, split_part(x.stream_id, '-', 1)
      from unnest(p_batch) x
     where x.type in ('SessionStarted', 'SessionForked', 'JobCreated') and x.stream_version = 1
       and split_part(x.stream_id, '-', 1) in ('session', 'job')
    on conflict (stream_id) do nothing;

    insert into activity_daily as a
      (owner_id, day, sessions_started, messages, revisions, drafts, valid_drafts, tool_runs, jobs_created,
       jobs_completed, jobs_failed)
    select o.owner_id, (x.recorded_at at time zone 'UTC')::date,
           count(*) filter (where x.type in ('SessionStarted', 'SessionForked')),
           count(*) filter (where x.type = 'MessageAppended'),
           count(*) filter (where x.type = 'RevisionAdded'),
           count(*) filter (where x.type = 'DraftRecorded'),
           count(*) filter (where x.type = 'DraftRecorded' and (x.data ->> 'valid')::boolean),
           count(*) filter (where x.type = 'ToolRunRecorded'),
           count(*) filter (where x.type = 'JobCreated'),
           count(*) filter (where x.type = 'JobCompleted'),
           count(*) filter (where x.type = 'JobFailed')
      from unnest(p_batch) x
      join activity_streams o on o.stream_id = x.stream_id
     where x.type in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
                      'ToolRunRecorded', 'JobCreated', 'JobCompleted', 'JobFailed')
     group by 1, 2
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

    insert into activity_daily_drafts as a (owner_id, day, language, drafts, valid_drafts)
    select o.owner_id, (x.recorded_at at time zone 'UTC')::date, x.data ->> 'language', count(*),
           count(*) filter (where (x.data ->> 'valid')::boolean)
      from unnest(p_batch) x
      join activity_streams o on o.stream_id = x.stream_id
     where x.type = 'DraftRecorded'
     group by 1, 2, 3
    on conflict (owner_id, day, language) do update
       set drafts = a.drafts + excluded.drafts, valid_drafts = a.valid_drafts + excluded.valid_drafts;
  end if;

end
$$;

-- Applies the next events (at most p_limit, in reader order, below the safe watermark and
-- the run's bound) into the run's schema, set-wise where it can (above), and moves its cursor,
-- in one transaction. Only the worker holding the run may apply; the cursor is read under the
-- run's row lock, so an event is never applied twice, even by two workers.
create function chronicle.projection_build_batch(p_run uuid, p_worker text, p_limit integer)
returns table (applied integer, caught_up boolean, state text)
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_batch chronicle.events[];
  n integer;
  v_last chronicle.events;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found then
    raise exception 'no projection run %', p_run using errcode = 'P0002';
  end if;
  if r.state <> 'running' or r.worker is distinct from p_worker then
    return query select 0, true, r.state;
    return;
  end if;
  v_batch := array(
    select ev from chronicle.events ev
     where (ev.transaction_id, ev.global_position) > (coalesce(r.cursor_xid, '0'::xid8), coalesce(r.cursor_position, 0))
       and ev.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       and (r.bound_xid is null or (ev.transaction_id, ev.global_position) <= (r.bound_xid, r.bound_position))
     order by ev.transaction_id, ev.global_position
     limit p_limit);
  n := cardinality(v_batch);
  if n > 0 then
    perform set_config('search_path', r.target_schema, true);
    perform chronicle.project_batch(v_batch, r.projections);
    perform set_config('search_path', 'chronicle', true);
    v_last := v_batch[n];
  end if;
  update chronicle.projection_runs x
     set cursor_xid = coalesce(v_last.transaction_id, x.cursor_xid),
         cursor_position = coalesce(v_last.global_position, x.cursor_position),
         events_done = x.events_done + n,
         events_total = greatest(x.events_total, x.events_done + n),
         phase = case when n < p_limit and x.phase = 'copying' then 'catching-up' else x.phase end,
         heartbeat_at = now(),
         updated_at = now()
   where x.id = p_run;
  return query select n, n < p_limit, 'running'::text;
end
$$;

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

-- projections.status reports large tables' row counts from the planner's statistics.
--
-- Status gives every read-model table's row count. An exact count(*) reads the whole table:
-- a few milliseconds for small tables, seconds for a table of millions, and the Studio polls
-- status. A table that pg_class.reltuples (kept by autovacuum and ANALYZE) puts at
-- p_exact_below rows or more is reported from those statistics and marked estimated; smaller
-- ones, and tables never analyzed (reltuples -1), are counted exactly.

create function chronicle.projection_table_rows(p_tables text[], p_exact_below bigint default 100000)
returns table (name text, rows bigint, estimated boolean)
language plpgsql stable as $$
declare
  t text;
  v_rel regclass;
  v_tuples real;
begin
  foreach t in array p_tables loop
    name := t;
    rows := null;
    estimated := false;
    v_rel := to_regclass(format('chronicle.%I', t));
    if v_rel is not null then
      select c.reltuples into v_tuples from pg_class c where c.oid = v_rel;
      if v_tuples >= p_exact_below then
        rows := round(v_tuples)::bigint;
        estimated := true;
      else
        execute format('select count(*) from %s', v_rel) into rows;
      end if;
    end if;
    return next;
  end loop;
end
$$;

-- ===== schemas/03_read_models.sql =====

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
);

create index sessions_owner_status_updated_idx on chronicle.sessions (owner_id, status, updated_at desc);
create unique index sessions_owner_external_key_idx on chronicle.sessions (owner_id, external_key)
  where external_key is not null;
create index sessions_parent_idx on chronicle.sessions (parent_id, parent_version) where parent_id is not null;
-- The retention sweep looks for active sessions idle since before a cut-off.
create index sessions_active_idle_idx on chronicle.sessions (last_activity_at) where status = 'active';
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

-- The log cursor of an event, as the store hands it out: '<transaction id>:<global position>'.
create function chronicle.event_cursor(e chronicle.events) returns text
language sql immutable as $$
  select e.transaction_id::text || ':' || e.global_position::text
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

-- ===== schemas/04_graphs.sql =====

-- Chronicle schema, area 4 of 7: agent-graph threads (LangGraph checkpoints) as events, and
-- their read model.
--
-- A thread is the stream 'graph-<uuid>', the uuid derived from (owner, thread id). Its events
-- (packages/events/src/graph.ts): GraphThreadStarted, GraphCheckpointSaved, GraphWritesSaved,
-- GraphThreadDeleted. Values the graph framework serialized travel as { type, data: base64 }
-- and are kept as such: the service never interprets them.
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
  type          text not null,
  data          text not null,
  primary key (graph_id, checkpoint_ns, channel, version)
);

create table chronicle.graph_writes (
  graph_id      uuid not null,
  checkpoint_ns text not null,
  checkpoint_id text not null,
  task_id       text not null,
  idx           integer not null,
  task_path     text not null,
  channel       text not null,
  type          text not null,
  data          text not null,
  version       integer not null,
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
      -- A channel's value at a version never changes: the first one stored stays.
      insert into graph_blobs (graph_id, checkpoint_ns, channel, version, type, data)
      select v_id, d ->> 'checkpointNs', b ->> 'channel', b ->> 'version', b -> 'value' ->> 'type',
             b -> 'value' ->> 'data'
        from jsonb_array_elements(d -> 'blobs') b
      on conflict do nothing;
    when 'GraphWritesSaved' then
      insert into graph_writes
        (graph_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, data, version)
      select v_id, d ->> 'checkpointNs', d ->> 'checkpointId', d ->> 'taskId', (w ->> 'idx')::integer,
             d ->> 'taskPath', w ->> 'channel', w -> 'value' ->> 'type', w -> 'value' ->> 'data', e.stream_version
        from jsonb_array_elements(d -> 'writes') w
      -- A regular write is stored once; a special one (error, interrupt, resume…) replaces its predecessor.
      on conflict (graph_id, checkpoint_ns, checkpoint_id, task_id, idx) do update
        set task_path = excluded.task_path,
            channel = excluded.channel,
            type = excluded.type,
            data = excluded.data,
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
$$;

select chronicle.register_projection(
  p_name => 'graph',
  p_version => 1,
  p_mode => 'inline',
  p_handler => 'chronicle.project_graph',
  p_tables => array['graph_threads', 'graph_checkpoints', 'graph_blobs', 'graph_writes'],
  p_stream_categories => array['graph'],
  p_description => 'LangGraph threads: checkpoints, channel values and pending writes, per owner and thread'
);

-- ===== schemas/05_analytics.sql =====

-- Chronicle schema, area 5 of 7: analytics.
--
-- The `activity` projection (async: the server's daemon follows the log) counts what happened
-- per owner and UTC day; the views over the read models answer the questions the analytics
-- API asks. The views read only effective content: what a rollback reverted is not counted
-- (tool runs and jobs are never reverted). Every view carries owner_id so a caller can be
-- limited to their own rows, and reads with the caller's rights (security_invoker), so
-- row-level security applies to it too.

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
-- The owner's activity rows, for row-level security.
create index activity_streams_owner_idx on chronicle.activity_streams (owner_id);

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


-- ----- views ------------------------------------------------------------------------------

-- One row per session: its counters plus draft validation, timing and its last message.
create view chronicle.session_summary as
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

-- One row per owner: how much they use the service.
create view chronicle.user_analytics as
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

-- A unified activity feed: effective messages, revisions, drafts, tool runs and job changes.
-- Query it with an owner and a limit, newest first.
create view chronicle.recent_activity as
select s.owner_id, m.session_id, 'message' as kind, m.message_id as entity_id,
       m.role || ': ' || left(m.content, 200) as summary, m.created_at as at
  from chronicle.messages m join chronicle.sessions s on s.id = m.session_id
 where s.effective @> m.version and s.status <> 'deleted'
union all
select s.owner_id, r.session_id, 'revision', r.revision_id,
       'revision ' || r.number || coalesce(': ' || left(r.note, 200), ''), r.created_at
  from chronicle.revisions r join chronicle.sessions s on s.id = r.session_id
 where s.effective @> r.version and s.status <> 'deleted'
union all
select s.owner_id, d.session_id, 'draft', d.draft_id,
       d.language || ' draft, ' || case when d.valid then 'valid' else 'invalid' end, d.created_at
  from chronicle.drafts d join chronicle.sessions s on s.id = d.session_id
 where s.effective @> d.version and s.status <> 'deleted'
union all
select s.owner_id, t.session_id, 'tool_run', t.tool_run_id, t.tool || ' ' || t.status, t.created_at
  from chronicle.tool_runs t join chronicle.sessions s on s.id = t.session_id
 where s.status <> 'deleted'
union all
select j.owner_id, j.session_id, 'job', j.id, j.job_type || ' ' || j.state, j.updated_at
  from chronicle.jobs j;

-- Draft validation success per owner and language.
create view chronicle.draft_validation_stats as
select s.owner_id,
       d.language,
       count(*) as drafts,
       count(*) filter (where d.valid) as valid_drafts,
       count(*) filter (where not d.valid) as invalid_drafts,
       count(*) filter (where d.valid)::double precision / count(*) as success_rate,
       max(d.created_at) as last_draft_at
  from chronicle.drafts d join chronicle.sessions s on s.id = d.session_id
 where s.effective @> d.version and s.status <> 'deleted'
 group by s.owner_id, d.language;

-- Job outcomes and processing time per owner and job type.
create view chronicle.job_stats as
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


alter view chronicle.session_summary set (security_invoker = true);
alter view chronicle.user_analytics set (security_invoker = true);
alter view chronicle.recent_activity set (security_invoker = true);
alter view chronicle.draft_validation_stats set (security_invoker = true);
alter view chronicle.job_stats set (security_invoker = true);

-- ===== schemas/06_security.sql =====

-- Chronicle schema, area 6 of 7: who may read what, for apps that read Chronicle's tables
-- straight through Supabase (PostgREST, supabase-js) with a user's JWT.
--
-- Chronicle itself connects as the tables' owner, which row-level security does not restrict,
-- so the service is unaffected; writes go through the API (chronicle.append_events) only.
-- The policies name no role, so they hold for every role that is not the owner and lacks
-- BYPASSRLS (Supabase's `authenticated` and `anon`; `service_role` bypasses them). Each one
-- calls auth.uid() as `(select auth.uid())`, which Postgres evaluates once per statement
-- rather than once per row (what Supabase recommends for tables of any size).
--
-- They need Supabase's auth.uid(). On a database without it (plain Postgres, the embedded
-- database) this file enables nothing; tests install a minimal auth shim first. A rebuild's
-- swap copies every policy and grant of a table to its new copy (02_projection_engine.sql).

do $$
declare
  t text;
begin
  if to_regprocedure('auth.uid()') is null then
    raise notice 'auth.uid() does not exist: row-level security policies are not installed';
    return;
  end if;

  -- Tables with an owner column: the owner's rows.
  foreach t in array array['sessions', 'files', 'jobs', 'sandboxes', 'streams', 'graph_threads',
                           'graph_checkpoints', 'activity_streams', 'activity_daily',
                           'activity_daily_drafts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format('create policy %I on chronicle.%I for select using (owner_id = (select auth.uid()))',
                   t || '_owner_reads', t);
  end loop;

  -- A session's content: rows of the sessions the user owns.
  foreach t in array array['session_rollbacks', 'session_updates', 'messages', 'revisions', 'drafts',
                           'hole_resolutions', 'session_files', 'session_file_detachments',
                           'tool_runs', 'checkpoints'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.sessions s where s.id = session_id and s.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- A job's tasks and artifacts: rows of the jobs the user owns.
  foreach t in array array['tasks', 'artifacts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.jobs j where j.id = job_id and j.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- A thread's channel values and pending writes: rows of the threads the user owns.
  foreach t in array array['graph_blobs', 'graph_writes'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.graph_threads g where g.id = graph_id and g.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- The log: events of the streams the user owns.
  alter table chronicle.events enable row level security;
  create policy events_owner_reads on chronicle.events for select using (
    exists (select 1 from chronicle.streams s
             where s.stream_id = events.stream_id and s.owner_id = (select auth.uid())));

  -- Blobs: the bytes of files the user owns.
  alter table chronicle.blobs enable row level security;
  create policy blobs_owner_reads on chronicle.blobs for select using (
    exists (select 1 from chronicle.files f where f.sha256 = blobs.sha256 and f.owner_id = (select auth.uid())));

  -- Supabase's API roles may read (subject to the policies above), never write.
  foreach t in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = t) then
      execute format('grant usage on schema chronicle to %I', t);
      execute format('grant select on chronicle.streams, chronicle.events, chronicle.sessions,
                        chronicle.session_rollbacks, chronicle.session_updates, chronicle.messages,
                        chronicle.revisions, chronicle.drafts, chronicle.hole_resolutions,
                        chronicle.session_files, chronicle.session_file_detachments, chronicle.tool_runs,
                        chronicle.checkpoints, chronicle.files, chronicle.blobs, chronicle.jobs, chronicle.tasks,
                        chronicle.artifacts, chronicle.sandboxes, chronicle.graph_threads,
                        chronicle.graph_checkpoints, chronicle.graph_blobs, chronicle.graph_writes,
                        chronicle.session_summary, chronicle.user_analytics, chronicle.recent_activity,
                        chronicle.draft_validation_stats, chronicle.job_stats to %I', t);
      if to_regclass('chronicle.schema_migrations') is not null then
        execute format('grant select on chronicle.schema_migrations to %I', t);
      end if;
    end if;
  end loop;
  if exists (select 1 from pg_roles where rolname = 'authenticated') then
    grant select on chronicle.activity_streams, chronicle.activity_daily, chronicle.activity_daily_drafts
      to authenticated;
  end if;
end
$$;

-- ===== schemas/90_dispatch.sql =====

-- Chronicle schema, area 7 of 7: the dispatchers, GENERATED by `pnpm db:dispatch` from the
-- projections the files before this one register (chronicle.refresh_projection_dispatch()
-- writes the same text whenever a projection is registered). Do not edit by hand: register
-- the projection, run `pnpm db:dispatch`, and commit the result; the tests fail while this
-- file and the registry disagree.
--
--   chronicle.project(e)                  every inline projection (the AFTER INSERT trigger)
--   chronicle.project_selected(e, names)  the named projections (rebuilds, snapshots, the daemon)

CREATE OR REPLACE FUNCTION chronicle.project(e chronicle.events)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_category text := split_part(e.stream_id, '-', 1);
begin
  if v_category = 'file' then perform chronicle.project_file(e); end if;
  if v_category = 'graph' then perform chronicle.project_graph(e); end if;
  if v_category = 'job' then perform chronicle.project_job(e); end if;
  if v_category = 'sandbox' then perform chronicle.project_sandbox(e); end if;
  if v_category = 'session' then perform chronicle.project_session(e); end if;
  return;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_selected(e chronicle.events, p_names text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_category text := split_part(e.stream_id, '-', 1);
begin
  if 'activity' = any (p_names) and v_category = any ('{session,job}'::text[]) then perform chronicle.project_activity(e); end if;
  if 'files' = any (p_names) and v_category = 'file' then perform chronicle.project_file(e); end if;
  if 'graph' = any (p_names) and v_category = 'graph' then perform chronicle.project_graph(e); end if;
  if 'jobs' = any (p_names) and v_category = 'job' then perform chronicle.project_job(e); end if;
  if 'sandboxes' = any (p_names) and v_category = 'sandbox' then perform chronicle.project_sandbox(e); end if;
  if 'sessions' = any (p_names) and v_category = 'session' then perform chronicle.project_session(e); end if;
  return;
end
$function$;
