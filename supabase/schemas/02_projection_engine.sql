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
  -- Async projections: how they are doing (their cursor is cursor_seq, below).
  events_applied    bigint not null default 0,
  events_per_second double precision,
  last_event_at     timestamptz,
  last_applied_at   timestamptz,
  -- The daemon that applies it (a lease: another process takes over once it expires).
  lease_owner       text,
  lease_expires_at  timestamptz,
  last_error        text,
  registered_at     timestamptz not null default now(),
  updated_at        timestamptz not null default now(),
  -- Async projections: the seq of the last event applied (chronicle.event_seq).
  cursor_seq        bigint
);

create table chronicle.projection_runs (
  id              uuid primary key,
  kind            text not null check (kind in ('rebuild', 'snapshot')),
  projections     text[] not null,
  -- Snapshots: the label, and the schema (analytics_asof_<label>) they are built into.
  label           text,
  target_schema   text not null,
  -- What the caller asked for ({"cursor": …} | {"checkpointId": …} | {"timestamp": …}); the seq
  -- it resolved to is bound_seq.
  as_of           jsonb,
  state           text not null check (state in ('running', 'cancelling', 'completed', 'failed', 'cancelled', 'dropped')),
  phase           text not null default 'preparing',
  events_done     bigint not null default 0,
  events_total    bigint not null default 0,
  -- The worker that holds the run (its claim's fencing token is generation, below).
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
  seeded_at       timestamptz,
  -- The seq of the last event the run includes (inclusive); null for a rebuild, which
  -- follows the head. A snapshot made before the log had seqs has none.
  bound_seq       bigint,
  -- The seq of the last event applied.
  cursor_seq      bigint,
  -- The fencing token of the worker's claim: every claim adds one, and every write of a run
  -- checks worker and generation, so a worker that lost the run (paused past the takeover
  -- window) can change nothing once another has claimed it.
  generation      bigint not null default 0,
  -- Rebuilds: how many times the swap found a table in use and backed off.
  swap_attempts   integer not null default 0
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
-- The append functions project a batch themselves, all of it at once, after its insert
-- (01_log.sql: a batch of chronicle.append_events, chronicle.append_group's set-wise path):
-- they mark that insert with `chronicle.projecting` = 'group', which only they set (they clear
-- it on entry and after the insert, and their SET clause drops it on exit).
create function chronicle.project_event() returns trigger
language plpgsql set search_path = chronicle, pg_temp as $$
begin
  if current_setting('chronicle.projecting', true) = 'group' then
    return null;
  end if;
  perform chronicle.project(new);
  return null;
end
$$;

-- The inline projections of rows an append function inserted marked 'group' (the trigger
-- skipped them), in insert order: set-wise where they are all messages of sessions
-- (chronicle.project_session_messages, 03_read_models.sql), otherwise one by one as the
-- trigger would have.
create function chronicle.project_inserted(p_events chronicle.events[]) returns void
language plpgsql as $$
declare
  v_event chronicle.events;
begin
  if p_events is null or chronicle.project_session_messages(p_events) then
    return;
  end if;
  foreach v_event in array p_events loop
    perform chronicle.project(v_event);
  end loop;
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

-- Whether p_worker holds run r under the claim p_generation (the fence every write of a run checks).
create function chronicle.projection_run_held(r chronicle.projection_runs, p_worker text, p_generation bigint)
returns boolean
language sql immutable as $$
  select r.worker is not distinct from p_worker and r.generation = p_generation
$$;

-- Why the swap could not move p_tables, or null: a materialized view reads one of them (a view
-- is recreated over the new table; a materialized view cannot be, and would go with the old).
-- Names are schema-qualified whatever the caller's search_path.
create function chronicle.projection_swap_refusal(p_tables text[]) returns text
language sql stable as $$
  select format('%s reads %s: a rebuild cannot swap a table a materialized view depends on; drop the '
                'materialized view (or make it a view) and the rebuild is retried',
                string_agg(distinct format('materialized view %I.%I', vn.nspname, v.relname), ', '),
                string_agg(distinct 'chronicle.' || t.relname, ', '))
    from pg_depend d
    join pg_rewrite rw on rw.oid = d.objid
    join pg_class v on v.oid = rw.ev_class
    join pg_namespace vn on vn.oid = v.relnamespace
    join pg_class t on t.oid = d.refobjid
   where d.classid = 'pg_rewrite'::regclass and v.relkind = 'm' and v.oid <> d.refobjid
     and t.relnamespace = 'chronicle'::regnamespace and t.relname = any (p_tables)
  having count(*) > 0
$$;

-- Creates the run's schema and, in it, an empty copy of every table of its projections, with
-- the live table's storage parameters (fillfactor, autovacuum settings: LIKE … INCLUDING ALL
-- does not copy them, and the swapped-in table must keep them) and without its secondary
-- indexes (built once the run has caught up: build_projection_indexes); for a rebuild from a
-- snapshot, fills them with the snapshot's rows, once. One transaction, and idempotent, so a
-- resumed run can call it again. Only the worker holding the run may (see projection_run_held).
create function chronicle.prepare_projection_build(p_run uuid, p_worker text, p_generation bigint) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_source chronicle.projection_runs;
  t text;
  v_columns text;
  v_options text;
  v_refusal text;
  v_tables text[];
  v_index record;
begin
  select * into r from chronicle.projection_runs where id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running' then
    raise exception 'projection run % is not running under this worker''s claim', p_run using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  if r.kind = 'rebuild' then
    -- Refused now rather than after the whole build, at the swap.
    v_refusal := chronicle.projection_swap_refusal(v_tables);
    if v_refusal is not null then
      raise exception '%', v_refusal using errcode = '55000';
    end if;
  end if;
  execute format('create schema if not exists %I', r.target_schema);
  foreach t in array v_tables loop
    if to_regclass(format('%I.%I', r.target_schema, t)) is null then
      execute format('create table %I.%I (like chronicle.%I including all)', r.target_schema, t, t);
      select array_to_string(c.reloptions, ', ') into v_options
        from pg_class c where c.oid = format('chronicle.%I', t)::regclass;
      if v_options is not null then
        execute format('alter table %I.%I set (%s)', r.target_schema, t, v_options);
      end if;
      -- The table fills without its secondary indexes (an index kept up row by row costs more
      -- than one built once over the whole table): chronicle.build_projection_indexes() builds
      -- them when the run has caught up. The primary key and the indexes of other constraints
      -- stay, for the handlers' lookups and conflicts.
      for v_index in
        select i.indexrelid::regclass::text as name
          from pg_index i
         where i.indrelid = format('%I.%I', r.target_schema, t)::regclass and not i.indisprimary
           and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
      loop
        execute format('drop index %s', v_index.name);
      end loop;
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
    foreach t in array v_tables loop
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
  -- A run resumed after its worker died while building the indexes catches up again first.
  update chronicle.projection_runs
     set phase = case phase when 'preparing' then 'copying' when 'indexing' then 'catching-up' else phase end,
         updated_at = now()
   where id = p_run;
end
$$;

-- The indexes of the live tables p_tables that their copies in p_schema lack (an index of the
-- same definition, whatever its name, is the same index: the swap matches them so too), with
-- what builds each one in p_schema under the live index's name.
create function chronicle.projection_missing_indexes(p_schema text, p_tables text[])
returns table (table_name text, index_name text, create_statement text)
language sql stable as $$
  select c.relname::text, i.relname::text,
         format('create %sindex %I on %I.%I %s', case when li.indisunique then 'unique ' else '' end,
                i.relname, p_schema, c.relname,
                regexp_replace(pg_get_indexdef(li.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', ''))
    from pg_index li
    join pg_class c on c.oid = li.indrelid
    join pg_class i on i.oid = li.indexrelid
   where c.relnamespace = 'chronicle'::regnamespace and c.relname = any (p_tables)
     and not exists (
       select 1
         from pg_index si
        where si.indrelid = to_regclass(format('%I.%I', p_schema, c.relname))
          and regexp_replace(pg_get_indexdef(si.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
            = regexp_replace(pg_get_indexdef(li.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1'))
   order by c.relname, i.relname
$$;

-- Builds the secondary indexes a run's tables filled without (prepare_projection_build), each
-- once over the whole table, under the live index's name; returns how many it built. The
-- engine calls it once the run has caught up, before the swap or the snapshot's end (which
-- call it again, finding nothing to do). One transaction, and it builds only what is missing:
-- a worker that dies while building leaves nothing half-built, and whoever resumes the run
-- builds them again. Only the worker holding the run may (see projection_run_held).
create function chronicle.build_projection_indexes(p_run uuid, p_worker text, p_generation bigint) returns integer
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_tables text[];
  v_index record;
  n integer := 0;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running' then
    raise exception 'projection run % is not running under this worker''s claim', p_run using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  for v_index in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute v_index.create_statement;
    n := n + 1;
  end loop;
  update chronicle.projection_runs x
     set phase = case when x.phase = 'indexing' then 'catching-up' else x.phase end, updated_at = now()
   where x.id = p_run;
  return n;
end
$$;

-- Ends a run that failed: it is marked failed with the error and its schema is dropped. The
-- projections a rebuild was building that need it (a new version, or never built) are marked
-- failed with the reason: their live tables stay and keep serving, and the daemon retries the
-- rebuild with back-off (projection_retry_at). One whose live tables are current goes back to
-- live: only the run records the failure.
-- Fenced: false, and nothing changed, when p_worker no longer holds the run under p_generation.
create function chronicle.fail_projection_run(p_run uuid, p_worker text, p_generation bigint, p_error text)
returns boolean
language plpgsql as $$
declare
  r chronicle.projection_runs;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation)
     or r.state not in ('running', 'cancelling') then
    return false;
  end if;
  execute format('drop schema if exists %I cascade', r.target_schema);
  update chronicle.projection_runs x
     set state = 'failed', error = p_error, finished_at = now(), updated_at = now()
   where x.id = p_run;
  if r.kind = 'rebuild' then
    update chronicle.projections p
       set state = case when p.built_version = p.version then 'live' else 'failed' end,
           last_error = case when p.built_version = p.version then p.last_error
                             else format('rebuild to v%s failed (run %s): %s', p.version, p_run, p_error) end,
           updated_at = now()
     where p.name = any (r.projections);
  end if;
  return true;
end
$$;

-- When the daemon may next start a rebuild of a projection whose last rebuilds failed: after
-- the last failure plus p_base_seconds doubled per failure since its last completed rebuild,
-- at most p_cap_seconds. Null when its last rebuild did not fail.
create function chronicle.projection_retry_at(p_name text, p_base_seconds double precision default 10,
                                              p_cap_seconds double precision default 600)
returns timestamptz
language sql stable as $$
  with mine as (
    select r.state, r.started_at, r.finished_at
      from chronicle.projection_runs r
     where r.kind = 'rebuild' and p_name = any (r.projections)),
  failures as (
    select count(*) as n, max(m.finished_at) as last_at
      from mine m
     where m.state = 'failed'
       and m.started_at > coalesce((select max(c.started_at) from mine c where c.state = 'completed'), '-infinity'))
  select f.last_at + make_interval(secs => least(p_base_seconds * power(2, f.n - 1), p_cap_seconds))
    from failures f
   where f.n > 0
     and (select m.state from mine m order by m.started_at desc limit 1) = 'failed'
$$;

-- A rebuild or snapshot applies events in batches of thousands. Projecting them one by one
-- updates a session's row once per event, inside one transaction, which is what made builds
-- slow. chronicle.project_batch() projects a batch with the same result, faster:
--   * sessions: a session's events after its last start, fork, rollback or purge in the batch
--     (content, updates of the title and metadata, lifecycle changes, attachments, checkpoints,
--     types with no read model) are inserted set-wise, one statement per table, and its row is
--     updated once (version, effective set, head, times, title, metadata, status, counters);
--     the events up to there go through the per-event handler, in order (a start creates the
--     row, a fork copies its parent's content, a rollback or a purge recomputes the row);
--   * activity: counts are sums, so a batch is folded with one upsert per owner and day;
--   * every other projection (jobs, files, sandboxes, graphs): the per-event handler, in order.
-- The batch is read from the log once per batch into a temporary table; only the events
-- folded one by one are read back as events.
-- The set-wise code restates the handlers chronicle.project_session and
-- chronicle.project_activity at version 1, and is used only while the registry holds exactly
-- those (chronicle.project_batch_setwise): a bumped version or another handler under either
-- name takes the per-event path, so a rebuild always folds with the registered handler. A
-- change to either handler bumps its version; the set-wise code then serves it again once it
-- has been brought in line and the versions below moved with it. The engine's tests compare
-- the result with the stop-the-world per-event rebuild, and a changed handler's rebuild with a
-- fold by that handler.

create function chronicle.project_batch_setwise(p_name text) returns boolean
language plpgsql stable as $$
begin
  -- PL/pgSQL rather than SQL: its plan is kept for the session (the trigger asks on every append).
  return exists (
    select 1
      from chronicle.projections p
      join (values ('sessions', 'chronicle.project_session', 1),
                   ('activity', 'chronicle.project_activity', 1)) w (name, handler, version)
        on w.name = p.name and w.handler = p.handler and w.version = p.version
     where p.name = p_name);
end
$$;

-- The batch it projects is the temporary table chronicle_build_events, which
-- projection_build_batch fills from the log (one row per event, in the log's order by seq;
-- session_id set for the events of session streams).
create function chronicle.project_batch(p_names text[]) returns void
language plpgsql as $$
declare
  -- The session events folded one by one, always: they create a session (from its parent's
  -- content, for a fork), or recompute it from its rows (a rollback, a purge).
  v_per_event constant text[] := array['SessionStarted', 'SessionForked', 'SessionRolledBack', 'SessionPurged'];
  v_fast_sessions boolean := 'sessions' = any (p_names) and chronicle.project_batch_setwise('sessions');
  v_fast_activity boolean := 'activity' = any (p_names) and chronicle.project_batch_setwise('activity');
  -- The projections folded one event at a time (all but the set-wise ones).
  v_rest text[] := array(
    select x from unnest(p_names) x
     where not ((x = 'sessions' and v_fast_sessions) or (x = 'activity' and v_fast_activity)));
  -- A session event that cannot be folded set-wise goes to every per-event projection and to sessions.
  v_with_sessions text[] := array_append(array(select x from unnest(v_rest) x where x <> 'sessions'), 'sessions');
  -- The stream categories the per-event projections care about ('*': every one).
  v_rest_categories text[] := array(
    select coalesce(c, '*') from chronicle.projections p
      left join lateral unnest(p.stream_categories) c on true
     where p.name = any (v_rest));
  v_any_category boolean;
  -- The types of the batch's events: a set-wise statement for a type it lacks is skipped.
  v_types text[] := array(select distinct b.type from pg_temp.chronicle_build_events b);
  v_next record;
begin
  v_any_category := '*' = any (v_rest_categories);
  -- Per session of the batch, the cut: the last version that must be folded one by one. Its
  -- events up to there go through the per-event handler, in order; those after it are folded
  -- set-wise afterwards. A session forked from in this batch goes wholly per event (the fork
  -- copies its content as of a version, so that content must be there first). live: whether
  -- the session has a row once the per-event events are folded (set below).
  create temp table if not exists chronicle_batch_sessions (
    session_id uuid primary key, cut integer not null, live boolean not null default false
  ) on commit drop;
  truncate pg_temp.chronicle_batch_sessions;
  if v_fast_sessions then
    insert into pg_temp.chronicle_batch_sessions (session_id, cut)
    select b.session_id, coalesce(max(b.stream_version) filter (where b.type = any (v_per_event)), 0)
      from pg_temp.chronicle_build_events b
     where b.session_id is not null
     group by 1;
    insert into pg_temp.chronicle_batch_sessions (session_id, cut)
    select distinct (b.data ->> 'parentId')::uuid, 2147483647
      from pg_temp.chronicle_build_events b
     where b.type = 'SessionForked' and b.session_id is not null
    on conflict (session_id) do update set cut = 2147483647;
  end if;

  -- In order, one event at a time: every projection but the set-wise ones, and sessions for
  -- the events up to their session's cut. Only these events are read back from the log.
  for v_next in
    select ev as event, (c.session_id is not null and b.stream_version <= c.cut) as with_sessions
      from pg_temp.chronicle_build_events b
      left join pg_temp.chronicle_batch_sessions c on c.session_id = b.session_id
      join chronicle.events ev on ev.global_position = b.global_position
     where (c.session_id is not null and b.stream_version <= c.cut)
        or v_any_category or b.category = any (v_rest_categories)
     order by b.seq
  loop
    perform chronicle.project_selected(v_next.event, case when v_next.with_sessions then v_with_sessions
                                                          else v_rest end);
  end loop;

  if v_fast_sessions then
    -- The events after the cut, of sessions that have a row (a stream that did not start with
    -- SessionStarted or SessionForked has none, and its events are ignored), as the handler
    -- chronicle.project_session folds them.
    update pg_temp.chronicle_batch_sessions c set live = true from sessions s where s.id = c.session_id;

    if 'MessageAppended' = any (v_types) then
      insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
      select b.session_id, (b.data ->> 'messageId')::uuid, b.stream_version, (b.data ->> 'seq')::integer,
             b.data ->> 'role', b.data ->> 'content', b.data -> 'metadata',
             coalesce((b.data ->> 'createdAt')::timestamptz, b.recorded_at)
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'MessageAppended' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'RevisionAdded' = any (v_types) then
      insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
      select b.session_id, (b.data ->> 'revisionId')::uuid, b.stream_version, (b.data ->> 'number')::integer,
             b.data -> 'ir', b.data ->> 'note', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'RevisionAdded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'DraftRecorded' = any (v_types) then
      insert into drafts (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
      select b.session_id, (b.data ->> 'draftId')::uuid, b.stream_version, b.data ->> 'code', b.data ->> 'language',
             (b.data ->> 'valid')::boolean, b.data -> 'metrics', (b.data ->> 'revisionNumber')::integer, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'DraftRecorded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'HoleResolved' = any (v_types) then
      insert into hole_resolutions (session_id, resolution_id, version, hole_id, value, confidence, created_at)
      select b.session_id, (b.data ->> 'resolutionId')::uuid, b.stream_version, b.data ->> 'holeId', b.data -> 'value',
             (b.data ->> 'confidence')::double precision, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'HoleResolved' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'ToolRunRecorded' = any (v_types) then
      insert into tool_runs (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
      select b.session_id, (b.data ->> 'toolRunId')::uuid, b.stream_version, b.data ->> 'tool', b.data -> 'input',
             b.data -> 'output', b.data ->> 'status', (b.data ->> 'durationMs')::bigint, b.data ->> 'error', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'ToolRunRecorded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'SessionUpdated' = any (v_types) then
      insert into session_updates (session_id, version, title_set, title, metadata_set, metadata)
      select b.session_id, b.stream_version, b.data ? 'title', b.data ->> 'title', b.data ? 'metadata',
             b.data -> 'metadata'
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'SessionUpdated' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'FileAttached' = any (v_types) then
      insert into session_files (session_id, file_id, version, sha256, name, mime_type, size, attached_at)
      select b.session_id, (b.data ->> 'fileId')::uuid, b.stream_version, b.data ->> 'sha256', b.data ->> 'name',
             b.data ->> 'mimeType', (b.data ->> 'size')::bigint, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'FileAttached' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'FileDetached' = any (v_types) then
      insert into session_file_detachments (session_id, file_id, version, detached_at)
      select b.session_id, (b.data ->> 'fileId')::uuid, b.stream_version, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'FileDetached' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'CheckpointCreated' = any (v_types) then
      insert into checkpoints (id, session_id, version, event_version, label, cursor, created_at)
      select (b.data ->> 'checkpointId')::uuid, b.session_id, (b.data ->> 'version')::integer, b.stream_version,
             b.data ->> 'label', b.data ->> 'cursor', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'CheckpointCreated' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;

    -- Each session's row once: what the last event sets (version, head, times; title and
    -- metadata from the last update that set them, status from the last lifecycle event),
    -- the versions added to the effective set, and the counters moved by the events' sum.
    -- The head is the event's chronicle.event_cursor (its global position). A session's
    -- events in a batch are consecutive versions (the log's order keeps every stream in
    -- version order, and a batch is a run of that order), so they add one range to the
    -- effective set; the versions are gathered one by one only should they not be.
    update sessions s
       set version = a.last_version,
           effective = s.effective
                       + case when a.events = a.last_version - a.first_version + 1
                              then int4multirange(int4range(a.first_version, a.last_version + 1))
                              else (select range_agg(int4range(x.stream_version, x.stream_version + 1))
                                      from pg_temp.chronicle_build_events x
                                     where x.session_id = a.session_id and x.stream_version >= a.first_version) end,
           head_cursor = l.global_position::text,
           updated_at = l.recorded_at,
           last_activity_at = l.recorded_at,
           title = case when r.title_set then r.title else s.title end,
           metadata = case when r.metadata_set then r.metadata else s.metadata end,
           status = coalesce(r.status, s.status),
           archived_at = coalesce(r.archived_at, s.archived_at),
           deleted_at = coalesce(r.deleted_at, s.deleted_at),
           expired_at = case when r.expiry_set then r.expired_at else s.expired_at end,
           message_count = s.message_count + a.messages,
           revision_count = s.revision_count + a.revisions,
           draft_count = s.draft_count + a.drafts,
           hole_count = s.hole_count + a.holes,
           file_count = s.file_count + a.files,
           tool_run_count = s.tool_run_count + a.tool_runs
      from (
        select b.session_id,
               count(*) as events,
               min(b.stream_version) as first_version,
               max(b.stream_version) as last_version,
               (count(*) filter (where b.type = 'MessageAppended'))::integer as messages,
               (count(*) filter (where b.type = 'RevisionAdded'))::integer as revisions,
               (count(*) filter (where b.type = 'DraftRecorded'))::integer as drafts,
               (count(*) filter (where b.type = 'HoleResolved'))::integer as holes,
               (count(*) filter (where b.type = 'FileAttached')
                 - count(*) filter (where b.type = 'FileDetached'))::integer as files,
               (count(*) filter (where b.type = 'ToolRunRecorded'))::integer as tool_runs
          from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
         where c.live and b.stream_version > c.cut
         group by b.session_id) a
      join pg_temp.chronicle_build_events l on l.session_id = a.session_id and l.stream_version = a.last_version
      -- The few events that set the title, the metadata or the status.
      left join (
        select b.session_id,
               bool_or(true) filter (where b.type = 'SessionUpdated' and b.data ? 'title') as title_set,
               (array_agg(b.data ->> 'title' order by b.stream_version desc)
                  filter (where b.type = 'SessionUpdated' and b.data ? 'title'))[1] as title,
               bool_or(true) filter (where b.type = 'SessionUpdated' and b.data ? 'metadata') as metadata_set,
               (array_agg(b.data -> 'metadata' order by b.stream_version desc)
                  filter (where b.type = 'SessionUpdated' and b.data ? 'metadata'))[1] as metadata,
               (array_agg(case b.type when 'SessionArchived' then 'archived' when 'SessionDeleted' then 'deleted'
                                      when 'SessionExpired' then 'expired' else 'active' end
                          order by b.stream_version desc)
                  filter (where b.type <> 'SessionUpdated'))[1] as status,
               (array_agg(b.recorded_at order by b.stream_version desc)
                  filter (where b.type = 'SessionArchived'))[1] as archived_at,
               (array_agg(b.recorded_at order by b.stream_version desc)
                  filter (where b.type = 'SessionDeleted'))[1] as deleted_at,
               bool_or(true) filter (where b.type in ('SessionExpired', 'SessionReopened')) as expiry_set,
               (array_agg(case when b.type = 'SessionExpired' then b.recorded_at end order by b.stream_version desc)
                  filter (where b.type in ('SessionExpired', 'SessionReopened')))[1] as expired_at
          from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
         where c.live and b.stream_version > c.cut
           and b.type in ('SessionUpdated', 'SessionArchived', 'SessionDeleted', 'SessionExpired', 'SessionReopened')
         group by b.session_id) r on r.session_id = a.session_id
     where s.id = a.session_id;
  end if;

  if v_fast_activity then
    insert into activity_streams (stream_id, owner_id, kind)
    select b.stream_id, (b.data ->> 'ownerId')::uuid, b.category
      from pg_temp.chronicle_build_events b
     where b.type in ('SessionStarted', 'SessionForked', 'JobCreated') and b.stream_version = 1
       and b.category in ('session', 'job')
    on conflict (stream_id) do nothing;

    insert into activity_daily as a
      (owner_id, day, sessions_started, messages, revisions, drafts, valid_drafts, tool_runs, jobs_created,
       jobs_completed, jobs_failed)
    select o.owner_id, (b.recorded_at at time zone 'UTC')::date,
           count(*) filter (where b.type in ('SessionStarted', 'SessionForked')),
           count(*) filter (where b.type = 'MessageAppended'),
           count(*) filter (where b.type = 'RevisionAdded'),
           count(*) filter (where b.type = 'DraftRecorded'),
           count(*) filter (where b.type = 'DraftRecorded' and (b.data ->> 'valid')::boolean),
           count(*) filter (where b.type = 'ToolRunRecorded'),
           count(*) filter (where b.type = 'JobCreated'),
           count(*) filter (where b.type = 'JobCompleted'),
           count(*) filter (where b.type = 'JobFailed')
      from pg_temp.chronicle_build_events b
      join activity_streams o on o.stream_id = b.stream_id
     where b.type in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
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

    if 'DraftRecorded' = any (v_types) then
      insert into activity_daily_drafts as a (owner_id, day, language, drafts, valid_drafts)
      select o.owner_id, (b.recorded_at at time zone 'UTC')::date, b.data ->> 'language', count(*),
             count(*) filter (where (b.data ->> 'valid')::boolean)
        from pg_temp.chronicle_build_events b
        join activity_streams o on o.stream_id = b.stream_id
       where b.type = 'DraftRecorded'
       group by 1, 2, 3
      on conflict (owner_id, day, language) do update
         set drafts = a.drafts + excluded.drafts, valid_drafts = a.valid_drafts + excluded.valid_drafts;
    end if;
  end if;
end
$$;

-- Applies the next events (at most p_limit, in the log's order, up to the run's bound) into the
-- run's schema, set-wise where it can (above), and moves its cursor, in one transaction. Only
-- the worker holding the run under its claim may apply (state 'taken' otherwise: another
-- worker has claimed it since); the cursor is read under the run's row lock, so an event is
-- never applied twice, even by two workers.
create function chronicle.projection_build_batch(p_run uuid, p_worker text, p_generation bigint, p_limit integer)
returns table (applied integer, caught_up boolean, state text)
language plpgsql as $$
declare
  r chronicle.projection_runs;
  n integer;
  v_last_seq bigint;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found then
    raise exception 'no projection run %', p_run using errcode = 'P0002';
  end if;
  if not chronicle.projection_run_held(r, p_worker, p_generation) then
    return query select 0, true, 'taken'::text;
    return;
  end if;
  if r.state <> 'running' then
    return query select 0, true, r.state;
    return;
  end if;
  -- A batch's statements are planned afresh each time over temporary tables the planner knows
  -- little about: compiling them (JIT) would take longer than running them.
  perform set_config('jit', 'off', true);
  -- The batch, read from the log once into a temporary table that chronicle.project_batch
  -- reads (set-wise, and for the events it folds one by one).
  create temp table if not exists chronicle_build_events (
    seq bigint not null, global_position bigint not null, stream_id text not null, category text not null,
    session_id uuid, stream_version integer not null, type text not null, data jsonb not null,
    recorded_at timestamptz not null
  ) on commit drop;
  truncate pg_temp.chronicle_build_events;
  insert into pg_temp.chronicle_build_events
    (seq, global_position, stream_id, category, session_id, stream_version, type, data, recorded_at)
  select q.seq, ev.global_position, ev.stream_id, split_part(ev.stream_id, '-', 1),
         case when split_part(ev.stream_id, '-', 1) = 'session' then chronicle.stream_uuid(ev.stream_id) end,
         ev.stream_version, ev.type, ev.data, ev.recorded_at
    from (select q.seq, q.global_position from chronicle.event_seq q
           where q.seq > coalesce(r.cursor_seq, 0) and (r.bound_seq is null or q.seq <= r.bound_seq)
           order by q.seq
           limit p_limit) q
    join chronicle.events ev on ev.global_position = q.global_position
   order by q.seq;
  get diagnostics n = row_count;
  if n > 0 then
    select max(b.seq) into v_last_seq from pg_temp.chronicle_build_events b;
    perform set_config('search_path', r.target_schema, true);
    perform chronicle.project_batch(r.projections);
    perform set_config('search_path', 'chronicle', true);
  end if;
  update chronicle.projection_runs x
     set cursor_seq = coalesce(v_last_seq, x.cursor_seq),
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
--
-- The swap must not stall the service while a reader holds one of the tables. It takes the
-- log's lock first, waiting at most p_lock_timeout_ms for the appends in flight (appends queue
-- behind it for that long at most), then the tables and the views over them with NOWAIT: were
-- it to wait for a reader while holding the log's lock (or queued for a table's lock, which
-- every later append writing that table would queue behind), appends would stop for as long
-- as the reader reads. A table in use fails the attempt at once (SQLSTATE 55P03), which
-- releases everything; the engine catches up and tries again after a jittered back-off. Under
-- reads that never leave a table free, the engine lets later attempts wait p_table_wait_ms
-- (small) for the tables: appends then queue for at most that long more.
create function chronicle.finish_projection_rebuild(p_run uuid, p_worker text, p_generation bigint,
                                                    p_lock_timeout_ms integer default 100,
                                                    p_table_wait_ms integer default 0) returns bigint
language plpgsql as $$
declare
  r chronicle.projection_runs;
  e chronicle.events;
  n bigint := 0;
  v_inline boolean;
  v_next record;
  v_last_seq bigint;
  v_retired text := 'chronicle_retired_' || replace(p_run::text, '-', '');
  v_tables text[];
  v_views record;
  v_view_defs jsonb := '[]'::jsonb;
  v_policies jsonb := '[]'::jsonb;
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
  v_refusal text;
  v_locked text;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running'
     or r.kind <> 'rebuild' then
    raise exception 'projection run % is not a running rebuild under this worker''s claim', p_run
      using errcode = '55000';
  end if;
  select bool_or(p.mode = 'inline'), array_agg(tb order by tb)
    into v_inline, v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  v_refusal := chronicle.projection_swap_refusal(v_tables);
  if v_refusal is not null then
    raise exception '%', v_refusal using errcode = '55000';
  end if;
  -- The engine built the indexes before (build_projection_indexes); should one still be
  -- missing, it is built here, before any lock is taken: no table is swapped in without all
  -- of its indexes.
  for g in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute g.create_statement;
  end loop;

  perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1) || 'ms', true);
  if v_inline then
    -- No append can be in flight after this, so every event is committed.
    lock table chronicle.events in share row exclusive mode;
  end if;
  -- The tables, and the views over them (recreated below), without waiting for their readers.
  select string_agg(x, ', ' order by x) into v_locked
    from (select format('chronicle.%I', tb) as x from unnest(v_tables) tb
          union
          select v.oid::regclass::text
            from pg_depend d
            join pg_rewrite rw on rw.oid = d.objid
            join pg_class v on v.oid = rw.ev_class
           where d.classid = 'pg_rewrite'::regclass and v.relkind = 'v' and v.oid <> d.refobjid
             and d.refobjid in (select format('chronicle.%I', tb)::regclass from unnest(v_tables) tb)) l;
  if coalesce(p_table_wait_ms, 0) <= 0 then
    execute format('lock table %s in access exclusive mode nowait', v_locked);
  else
    perform set_config('lock_timeout', p_table_wait_ms || 'ms', true);
    execute format('lock table %s in access exclusive mode', v_locked);
    perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1) || 'ms', true);
  end if;
  if v_inline then
    -- Sequencing every committed event here puts every event the live tables hold before the
    -- swap in the log's order.
    while chronicle.sequencer_pending() loop
      perform chronicle.sequence_events(null);
    end loop;
  end if;

  perform set_config('search_path', r.target_schema, true);
  v_last_seq := r.cursor_seq;
  for v_next in
    select ev as event, q.seq from chronicle.event_seq q
      join chronicle.events ev on ev.global_position = q.global_position
     where q.seq > coalesce(r.cursor_seq, 0)
     order by q.seq
  loop
    perform chronicle.project_selected(v_next.event, r.projections);
    n := n + 1;
    v_last_seq := v_next.seq;
  end loop;

  -- From here on every name is schema-qualified, and view definitions come out qualified.
  perform set_config('search_path', 'pg_catalog', true);

  for v_views in
    select distinct v.oid, v.reloptions
      from pg_depend d
      join pg_rewrite rw on rw.oid = d.objid
      join pg_class v on v.oid = rw.ev_class
     where d.classid = 'pg_rewrite'::regclass and v.relkind = 'v'
       and d.refobjid in (select format('chronicle.%I', x)::regclass from unnest(v_tables) x)
       and v.oid <> d.refobjid
     order by v.oid
  loop
    v_view_defs := v_view_defs || jsonb_build_object(
      'view', v_views.oid::regclass::text,
      'definition', pg_get_viewdef(v_views.oid),
      'options', coalesce(array_to_string(v_views.reloptions, ', '), ''));
  end loop;

  -- Policies on the swapped tables, and on every table whose policy reads one of them (a
  -- message's policy reads sessions), written out while their text still names chronicle's
  -- tables: a policy follows the table it reads into the retired schema, and goes with it.
  for g in
    select c.relname, pol.polname, pol.polpermissive,
           case pol.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                           when 'd' then 'delete' else 'all' end as cmd,
           (select string_agg(case when ro = 0 then 'public' else quote_ident(rl.rolname) end, ', ')
              from unnest(pol.polroles) ro left join pg_roles rl on rl.oid = ro) as roles,
           pg_get_expr(pol.polqual, pol.polrelid) as qual,
           pg_get_expr(pol.polwithcheck, pol.polrelid) as withcheck
      from pg_policy pol
      join pg_class c on c.oid = pol.polrelid
     where c.relnamespace = 'chronicle'::regnamespace
       and (c.relname = any (v_tables)
            or exists (select 1 from pg_depend d
                        where d.classid = 'pg_policy'::regclass and d.objid = pol.oid
                          and d.refobjid in (select format('chronicle.%I', x)::regclass from unnest(v_tables) x)))
     order by c.relname, pol.polname
  loop
    v_policies := v_policies || jsonb_build_object(
      'table', g.relname, 'name', g.polname,
      'create', format('create policy %I on chronicle.%I as %s for %s to %s%s%s', g.polname, g.relname,
                       case when g.polpermissive then 'permissive' else 'restrictive' end, g.cmd, g.roles,
                       case when g.qual is null then '' else ' using (' || g.qual || ')' end,
                       case when g.withcheck is null then '' else ' with check (' || g.withcheck || ')' end));
  end loop;

  execute format('create schema %I', v_retired);
  foreach t in array v_tables loop
    execute format('alter table chronicle.%I set schema %I', t, v_retired);
    execute format('alter table %I.%I set schema chronicle', r.target_schema, t);
    v_old := format('%I.%I', v_retired, t)::regclass;
    v_new := format('chronicle.%I', t)::regclass;

    -- Row-level security and the grants of the old table (its policies: below).
    if (select relrowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s enable row level security', v_new);
    end if;
    if (select relforcerowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s force row level security', v_new);
    end if;
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
  -- Every policy written out above, as it was, over the new tables.
  for v_item in select * from jsonb_array_elements(v_policies) loop
    execute format('drop policy if exists %I on chronicle.%I', v_item ->> 'name', v_item ->> 'table');
    execute v_item ->> 'create';
  end loop;
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
         cursor_seq = case when p.mode = 'async' then v_last_seq else p.cursor_seq end,
         updated_at = now()
   where p.name = any (r.projections);
  update chronicle.projection_runs x
     set state = 'completed',
         phase = 'done',
         cursor_seq = v_last_seq,
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
create function chronicle.finish_projection_snapshot(p_run uuid, p_worker text, p_generation bigint) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_tables text[];
  v record;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running'
     or r.kind <> 'snapshot' then
    raise exception 'projection run % is not a running snapshot under this worker''s claim', p_run
      using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  -- The indexes its tables filled without, should the engine not have built them yet.
  for v in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute v.create_statement;
  end loop;
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

-- Applies the next batch of an async projection (in the log's order, after its cursor), if
-- this worker holds (or can take) its lease. Rows and cursor move in one transaction; the cursor is read under the projection's
-- row lock, so two daemons never both apply an event.
create function chronicle.projection_async_batch(p_name text, p_worker text, p_limit integer, p_lease_seconds integer)
returns table (applied integer, held boolean, caught_up boolean)
language plpgsql as $$
declare
  p chronicle.projections;
  e chronicle.events;
  n integer := 0;
  v_next record;
  v_last_seq bigint;
  v_last_at timestamptz;
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
  for v_next in
    select ev as event, q.seq
      from (select * from chronicle.event_seq q0 where q0.seq > coalesce(p.cursor_seq, 0) order by q0.seq limit p_limit) q
      join chronicle.events ev on ev.global_position = q.global_position
     order by q.seq
  loop
    perform chronicle.project_selected(v_next.event, array[p_name]);
    n := n + 1;
    v_last_seq := v_next.seq;
    v_last_at := (v_next.event).recorded_at;
  end loop;
  -- A batch that went through clears a failure of the daemon's; not a failed or pending rebuild
  -- (built_version behind version), which the rebuild's outcome reports.
  if n > 0 then
    update chronicle.projections x
       set cursor_seq = v_last_seq,
           events_applied = x.events_applied + n,
           last_event_at = v_last_at,
           last_applied_at = now(),
           events_per_second = n / greatest(extract(epoch from clock_timestamp() - v_started), 0.000001),
           state = case when x.built_version = x.version then 'live' else x.state end,
           last_error = case when x.built_version = x.version then null else x.last_error end,
           updated_at = now()
     where x.name = p_name;
  elsif p.state = 'failed' and p.built_version = p.version then
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

-- ----- dropping a run's schema ------------------------------------------------------------

-- Drops the schema a run built into (a rebuild's shadow tables, a snapshot's tables), for a
-- cancelled run or a dropped snapshot. Only a schema some run names can be dropped this way:
-- the service's role, which owns no schema, drops no other.
create function chronicle.drop_projection_schema(p_run uuid) returns void
language plpgsql as $$
declare
  v_schema text;
begin
  select r.target_schema into v_schema from chronicle.projection_runs r where r.id = p_run;
  if v_schema is null then
    raise exception 'projection run % does not exist', p_run using errcode = 'P0002';
  end if;
  execute format('drop schema if exists %I cascade', v_schema);
end
$$;
