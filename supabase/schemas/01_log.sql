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
)
-- Every append updates its stream's row: room on the page, and no indexed column among those
-- it changes (version, updated_at), keep that update HOT (no index entries, no bloat).
with (fillfactor = 80);

create index streams_owner_idx on chronicle.streams (owner_id, stream_type);

create table chronicle.events (
  -- Unique and increasing in insert order; within a stream, in version order (a stream's
  -- events are inserted while its row is locked). Not the log's order (see chronicle.event_seq).
  global_position bigint generated always as identity primary key,
  -- The id of the writing transaction: how the sequencer finds the events of transactions
  -- that committed since its last pass. Meaningful on this server only.
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

-- The sequencer's lookups: the events of given transactions, of transactions after a horizon.
create index events_tx_position_idx on chronicle.events (transaction_id, global_position);

-- Guarantee 1: the log is append-only. Rows can be neither changed nor removed. The one
-- exception is erasure: chronicle.redact_stream (03_read_models.sql), which the purge functions
-- (chronicle.purge_session_stream, purge_file_stream, purge_job_stream, purge_sandbox_stream,
-- purge_graph_stream) call, and the retention of graph checkpoints,
-- chronicle.prune_graph_checkpoints (04_graphs.sql): the only code that sets
-- `chronicle.redacting` (to its own transaction's id, for its own statement) may replace the
-- payload and metadata of events; their identity, type, stream, version, position and time
-- stay, so the log's shape, versions and cursors stay valid.
create function chronicle.reject_event_mutation() returns trigger
language plpgsql as $$
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

-- The version conflict (CH409) both append functions report, in one spelling: a message for
-- people and a detail the store reads ({"expected": ..., "actual": ...}).
create function chronicle.version_conflict_message(p_stream_id text, p_current integer, p_expected integer)
returns text
language sql immutable as $$
  select format('stream %s is at version %s, expected %s', p_stream_id, p_current,
                case p_expected when -2 then 'no stream' when -3 then 'an existing stream'
                     else p_expected::text end)
$$;

create function chronicle.version_conflict_detail(p_current integer, p_expected integer) returns text
language sql immutable as $$
  select jsonb_build_object('expected', p_expected, 'actual', p_current)::text
$$;

-- The append (guarantees 2, 3 and 5): one call checks the expected version, detects a retried
-- batch, bumps the stream and inserts the events; the inline projections run in the same
-- transaction, a single event's in the insert's trigger, a batch's together after the insert
-- (chronicle.project_inserted, 02_projection_engine.sql). Nothing is announced here: the
-- sequencer gives the committed events their place in the log's order and notifies followers
-- once per batch (below).
--
-- p_expected_version: >= 0 exact version (0 = the stream has no events yet),
--                     -1 any, -2 the stream must not exist, -3 the stream must exist.
-- p_events: a JSON array of {event_id, type, schema_version, data, metadata}.
--
-- Failures raise with a Chronicle SQLSTATE so the whole transaction rolls back (a batch is
-- all or nothing):
--   CH409 version conflict   (detail: {"expected": ..., "actual": ...})
--   CH410 idempotency clash  (detail: {"event_ids": [...]})
create function chronicle.append_events(
  p_stream_id text,
  p_stream_type text,
  p_expected_version integer,
  p_events jsonb,
  p_owner_id uuid default null
) returns table (
  event_id uuid,
  stream_version integer,
  global_position bigint,
  recorded_at timestamptz,
  duplicate boolean
)
language plpgsql as $$
declare
  v_count integer := jsonb_array_length(p_events);
  v_current integer;
  v_known integer;
  v_same boolean;
  v_offsets integer;
  v_events chronicle.events[];
begin
  if v_count = 0 then
    raise exception 'an append needs at least one event' using errcode = '22023';
  end if;
  -- One event is projected by the insert's trigger; a batch set-wise, below.
  perform set_config('chronicle.projecting', '', true);

  -- The stream's row, locked: appends to one stream are serialised here. The fast path is an
  -- existing stream; the general path creates it first (concurrent creators wait for each
  -- other in the insert, then both lock).
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

  -- A retry comes before the version check: an append that succeeded must return its original
  -- result even though the stream has moved on since. One index probe per event id; the full
  -- analysis only when one of them is already in the log.
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

    -- The same events, in the same order, consecutive in this stream: a retry.
    if v_known = v_count and v_same and v_offsets = 1 then
      return query
        select e.event_id, e.stream_version, e.global_position, e.recorded_at, true
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
     or (p_expected_version = -2 and v_current > 0)
     or (p_expected_version = -3 and v_current = 0) then
    raise exception using errcode = 'CH409',
      message = chronicle.version_conflict_message(p_stream_id, v_current, p_expected_version),
      detail = chronicle.version_conflict_detail(v_current, p_expected_version);
  end if;

  update chronicle.streams s
     set version = v_current + v_count,
         updated_at = now()
   where s.stream_id = p_stream_id;

  if v_count = 1 then
    return query
      insert into chronicle.events as e
        (stream_id, stream_version, event_id, type, schema_version, data, metadata)
      select p_stream_id, v_current + 1, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
             coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
             coalesce(x.elem -> 'metadata', '{}'::jsonb)
      from jsonb_array_elements(p_events) as x(elem)
      returning e.event_id, e.stream_version, e.global_position, e.recorded_at, false;
    return;
  end if;

  -- A batch: inserted with the trigger stepping aside, then projected together
  -- (chronicle.project_inserted: set-wise where the read model allows, else event by event).
  perform set_config('chronicle.projecting', 'group', true);
  with inserted as (
    insert into chronicle.events as e
      (stream_id, stream_version, event_id, type, schema_version, data, metadata)
    select p_stream_id, v_current + x.ord::integer, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
           coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
           coalesce(x.elem -> 'metadata', '{}'::jsonb)
    from jsonb_array_elements(p_events) with ordinality as x(elem, ord)
    order by x.ord
    returning e.*
  )
  select array_agg(i::chronicle.events order by i.global_position) into v_events from inserted i;
  perform set_config('chronicle.projecting', '', true);
  perform chronicle.project_inserted(v_events);
  return query
    select x.event_id, x.stream_version, x.global_position, x.recorded_at, false
      from unnest(v_events) x
     order by x.global_position;
end
$$;

-- Appends of different callers in one transaction (the store's group commit), sharing one
-- commit and one WAL flush; each keeps its own version check, atomicity and error: a refused or
-- failing append (a version conflict, say) is reported with its SQLSTATE while the others
-- commit. p_appends: a JSON array of {stream_id, stream_type, expected_version, events,
-- owner_id}; a row per event appended, or one row carrying the error of an append that was not
-- (its index in p_appends is `append`).
--
-- Two paths, side by side:
--   set-wise  the common case: appends to existing streams, one per stream, ids new to the log.
--             Their rows are locked in stream order (two groups never deadlock on them), the
--             version checks are made against the locked versions (an append that fails its
--             check is reported and writes nothing), and the others are written together: one
--             UPDATE of their streams, one INSERT of their events, in group order, then their
--             inline projections (messages of sessions set-wise, others event by event in
--             insert order): every statement per group instead of per append, in one
--             subtransaction.
--   one by one  the rest (a new stream, a stream named twice, an id already in the log, i.e. a
--             retry), and the whole group if the set-wise statements fail (a projection
--             refusing an event, an id written concurrently): each append as
--             chronicle.append_events makes it, in a subtransaction of its own.
create function chronicle.append_group(p_appends jsonb)
returns table (
  append integer,
  event_id uuid,
  stream_version integer,
  global_position bigint,
  recorded_at timestamptz,
  duplicate boolean,
  error_code text,
  error_message text,
  error_detail text
)
language plpgsql as $$
declare
  a record;
  v_set integer[];
  v_rows jsonb;
  v_events chronicle.events[];
  v_code text;
  v_message text;
  v_detail text;
begin
  -- Which appends can go set-wise: a stream named once in the group that exists, events to
  -- append, and none of the group's event ids in the log or named twice.
  if not exists (
       select 1 from chronicle.events e
        where e.event_id in (select (ev ->> 'event_id')::uuid
                               from jsonb_array_elements(p_appends) x, jsonb_array_elements(x -> 'events') ev))
     and (select count(*) = count(distinct ev ->> 'event_id')
            from jsonb_array_elements(p_appends) x, jsonb_array_elements(x -> 'events') ev) then
    select array_agg(g.i order by g.i) into v_set
      from (select (x.ord - 1)::integer as i, x.elem ->> 'stream_id' as stream_id,
                   count(*) over (partition by x.elem ->> 'stream_id') as named,
                   jsonb_array_length(x.elem -> 'events') as n
              from jsonb_array_elements(p_appends) with ordinality x(elem, ord)) g
     where g.named = 1 and g.n > 0
       and exists (select 1 from chronicle.streams s where s.stream_id = g.stream_id);
  end if;

  if v_set is not null then
    begin
      perform 1
         from chronicle.streams s
        where s.stream_id in (select p_appends -> i ->> 'stream_id' from unnest(v_set) i)
        order by s.stream_id
          for update;

      -- The rows this statement inserts are projected below, together (the trigger skips them).
      perform set_config('chronicle.projecting', 'group', true);
      with input as (
        select i, p_appends -> i ->> 'stream_id' as stream_id,
               (p_appends -> i ->> 'expected_version')::integer as expected,
               p_appends -> i -> 'events' as events
          from unnest(v_set) i
      ),
      checked as (
        select input.*, s.version as current,
               (input.expected >= 0 and s.version <> input.expected)
               or (input.expected = -2 and s.version > 0)
               or (input.expected = -3 and s.version = 0) as conflict
          from input join chronicle.streams s on s.stream_id = input.stream_id
      ),
      bumped as (
        update chronicle.streams s
           set version = c.current + jsonb_array_length(c.events),
               updated_at = now()
          from checked c
         where s.stream_id = c.stream_id and not c.conflict
        returning s.stream_id
      ),
      inserted as (
        insert into chronicle.events as e
          (stream_id, stream_version, event_id, type, schema_version, data, metadata)
        select c.stream_id, c.current + x.ord::integer, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
               coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
               coalesce(x.elem -> 'metadata', '{}'::jsonb)
          from checked c, jsonb_array_elements(c.events) with ordinality as x(elem, ord)
         where not c.conflict
         order by c.i, x.ord
        returning e.*
      )
      select coalesce(jsonb_agg(r order by r.append, r.stream_version), '[]'::jsonb),
             (select array_agg(ins::chronicle.events order by ins.global_position) from inserted ins)
        into v_rows, v_events
        from (select c.i as append, ins.event_id, ins.stream_version, ins.global_position, ins.recorded_at,
                     false as duplicate, null::text as error_code, null::text as error_message,
                     null::text as error_detail
                from inserted ins join checked c on c.stream_id = ins.stream_id
              union all
              select c.i, null, null, null, null, null, 'CH409',
                     chronicle.version_conflict_message(c.stream_id, c.current, c.expected),
                     chronicle.version_conflict_detail(c.current, c.expected)
                from checked c where c.conflict) r;
      perform set_config('chronicle.projecting', '', true);
      perform chronicle.project_inserted(v_events);
    exception when others then
      -- Nothing of the set was written: all of it goes one by one below.
      v_set := null;
      v_rows := null;
    end;
  end if;

  if v_rows is not null then
    return query
      select r.append, r.event_id, r.stream_version, r.global_position, r.recorded_at, r.duplicate,
             r.error_code, r.error_message, r.error_detail
        from jsonb_to_recordset(v_rows) as r(append integer, event_id uuid, stream_version integer,
             global_position bigint, recorded_at timestamptz, duplicate boolean, error_code text,
             error_message text, error_detail text);
  end if;

  for a in select x.elem, (x.ord - 1)::integer as i
             from jsonb_array_elements(p_appends) with ordinality x(elem, ord)
            where v_set is null or (x.ord - 1)::integer <> all (v_set) loop
    begin
      return query
        select a.i, r.event_id, r.stream_version, r.global_position, r.recorded_at, r.duplicate,
               null::text, null::text, null::text
          from chronicle.append_events(a.elem ->> 'stream_id', a.elem ->> 'stream_type',
                                       (a.elem ->> 'expected_version')::integer, a.elem -> 'events',
                                       (a.elem ->> 'owner_id')::uuid) r;
    exception when others then
      get stacked diagnostics v_code = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      return query select a.i, null::uuid, null::integer, null::bigint, null::timestamptz, null::boolean,
                          v_code, v_message, v_detail;
    end;
  end loop;
end
$$;

-- ----- the log's order: the sequencer ---------------------------------------------------------
--
-- Identity values are handed out at insert and transaction ids at first write: neither is the
-- order in which events commit (a transaction can take position 10, stay open while 11
-- commits, and commit later), and transaction ids mean nothing on another server. So the log
-- has an order of its own, assigned after commit and stored as data: chronicle.event_seq
-- gives each committed event a dense, gap-free, increasing seq. Every reader of the whole log
-- (the store's readAll and subscribe, the async projections, builds, snapshots, export) reads
-- by seq and resumes after a seq, and a dump restored elsewhere keeps it.
--
-- chronicle.sequence_events() assigns them in passes, each pinned to a snapshot (its xmax
-- and in-progress transaction ids): a pass takes exactly the events of the transactions that
-- had finished at its snapshot and had not at the previous pass's, in global_position order.
-- Within a stream global_position is version order, and a stream's previous version committed
-- before the next one could be written, so it is in the same pass or an earlier one: no
-- reader ever sees a stream out of version order. A transaction still running, in this
-- database or any other, holds back only its own events.

create table chronicle.event_seq (
  seq             bigint primary key,
  global_position bigint not null unique
);

create table chronicle.sequencer (
  id               boolean primary key default true check (id),
  last_seq         bigint not null default 0,
  -- The snapshot of the last complete pass: the transactions in progress then (horizon_xip)
  -- or begun after it (>= horizon_xmax) are those whose events it has yet to sequence.
  horizon_xmax     xid8 not null,
  horizon_xip      xid8[] not null default '{}',
  -- A pass that takes more than one batch: its snapshot, and how far it got.
  pass_xmax        xid8,
  pass_xip         xid8[],
  pass_position    bigint,
  -- The server those transaction ids belong to (pg_control_system(); null where it cannot be
  -- read). Restored into another server, the next pass takes every event not yet sequenced.
  system_id        bigint,
  -- One process sequences at a time: the store's sequencer holds this lease while it runs.
  lease_owner      text,
  lease_expires_at timestamptz,
  sequenced_at     timestamptz,
  updated_at       timestamptz not null default now()
);

-- This server's identity, or null where the role may not read it.
create function chronicle.system_identifier() returns bigint
language plpgsql stable as $$
begin
  return (select system_identifier from pg_control_system());
exception when others then
  return null;
end
$$;

-- Whether the sequencer has work: events committed and not yet sequenced, a pass under way,
-- or transaction ids from another server. Read-only, for the sequencer's idle polls.
--
-- The candidates are found through events_tx_position_idx, in two parts that never overlap
-- (a snapshot's in-progress ids are below its xmax): the transactions begun since the horizon,
-- a range bounded on both sides, and those in progress at it, probed one by one. Written as one
-- OR, or joined to the sequencer's row, the planner scans the whole log, on every poll.
create function chronicle.sequencer_pending() returns boolean
language plpgsql stable as $$
declare
  st chronicle.sequencer;
  v_now pg_snapshot := pg_current_snapshot();
  v_id xid8;
begin
  -- The horizon is read first and the log probed with its values, each probe an index lookup:
  -- joined to the sequencer's row, or with the in-progress ids as one `= any`, the planner
  -- scans the log.
  select * into st from chronicle.sequencer;
  if st.pass_xmax is not null
     or st.system_id is distinct from coalesce(chronicle.system_identifier(), st.system_id)
     or pg_snapshot_xmax(v_now) < coalesce(st.pass_xmax, st.horizon_xmax) then
    return true;
  end if;
  if exists (
       select 1 from chronicle.events e
        where e.transaction_id >= st.horizon_xmax and e.transaction_id < pg_snapshot_xmax(v_now)
          and pg_visible_in_snapshot(e.transaction_id, v_now)
          and not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position)) then
    return true;
  end if;
  foreach v_id in array st.horizon_xip loop
    if pg_visible_in_snapshot(v_id, v_now)
       and exists (
         select 1 from chronicle.events e
          where e.transaction_id = v_id
            and not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position)) then
      return true;
    end if;
  end loop;
  return false;
end
$$;

-- Sequences the next batch (at most p_limit events; null: the rest of the pass) and returns how
-- many it did, the last seq, whether more are waiting, and whether this call began its pass
-- (so its snapshot is later than the call). One caller at a time: the sequencer's row is
-- locked. A batch that sequenced anything notifies `chronicle_events` (payload p_origin) at its
-- commit: followers re-read from their cursors, once per batch rather than once per append.
create function chronicle.sequence_events(p_limit integer default 10000, p_origin text default null)
returns table (sequenced integer, last_seq bigint, more boolean, fresh boolean)
-- Planned with each call's values: a plan cached for any horizon cannot tell a pass over the
-- newest transactions (an index range) from one over the whole log, and may scan it.
language plpgsql set plan_cache_mode = force_custom_plan as $$
declare
  st chronicle.sequencer;
  v_now pg_snapshot;
  v_system bigint := chronicle.system_identifier();
  v_count integer;
  v_last_position bigint;
  v_fresh boolean;
begin
  select * into st from chronicle.sequencer for update;
  -- A statement, not an assignment: an assignment is evaluated in the snapshot taken before
  -- the lock was granted, older than the horizon another caller may have stored meanwhile, and
  -- that would look like a restore and sequence with a scan of the whole log.
  select pg_current_snapshot() into v_now;

  if (v_system is not null and st.system_id is not null and v_system <> st.system_id)
     or pg_snapshot_xmax(v_now) < coalesce(st.pass_xmax, st.horizon_xmax) then
    -- Restored into another server: the horizon's transaction ids mean nothing here. Every
    -- event not yet sequenced, in global position order, in one statement (one snapshot),
    -- which becomes the new horizon.
    with snap as (select pg_current_snapshot() as s),
    batch as (
      insert into chronicle.event_seq (seq, global_position)
      select st.last_seq + row_number() over (order by e.global_position), e.global_position
        from chronicle.events e
       where not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position)
      returning seq)
    update chronicle.sequencer x
       set last_seq = coalesce((select max(b.seq) from batch b), x.last_seq),
           horizon_xmax = pg_snapshot_xmax(snap.s),
           horizon_xip = array(select pg_snapshot_xip(snap.s)),
           pass_xmax = null,
           pass_xip = null,
           pass_position = null,
           system_id = v_system,
           sequenced_at = now(),
           updated_at = now()
      from snap
    returning x.last_seq - st.last_seq, x.last_seq into v_count, st.last_seq;
    if v_count > 0 then
      perform pg_notify('chronicle_events', coalesce(p_origin, ''));
    end if;
    return query select v_count, st.last_seq, false, true;
    return;
  end if;

  v_fresh := st.pass_xmax is null;
  if v_fresh then
    st.pass_xmax := pg_snapshot_xmax(v_now);
    st.pass_xip := array(select pg_snapshot_xip(v_now));
    st.pass_position := 0;
  end if;

  -- The pass's events: transactions finished at its snapshot and not at the horizon's, found
  -- through events_tx_position_idx as in chronicle.sequencer_pending (a range bounded on both
  -- sides, and the horizon's in-progress ids), never by a scan of the log. Materialized: else
  -- the planner may walk the log in global_position order to serve the ORDER BY … LIMIT.
  with candidate as materialized (
    select e.global_position
      from chronicle.events e
     where e.transaction_id >= st.horizon_xmax and e.transaction_id < st.pass_xmax
       and e.transaction_id <> all (st.pass_xip) and e.global_position > st.pass_position
    union all
    -- One index probe per id (offset 0 keeps the planner from turning it into a join that
    -- scans the log).
    select t.global_position
      from unnest(st.horizon_xip) x(id),
           lateral (select e.global_position
                      from chronicle.events e
                     where e.transaction_id = x.id and e.transaction_id < st.pass_xmax
                       and e.transaction_id <> all (st.pass_xip) and e.global_position > st.pass_position
                    offset 0) t),
  batch as (
    select c.global_position
      from candidate c
     where not exists (select 1 from chronicle.event_seq q where q.global_position = c.global_position)
     order by c.global_position
     limit p_limit),
  inserted as (
    insert into chronicle.event_seq (seq, global_position)
    select st.last_seq + row_number() over (order by b.global_position), b.global_position
      from batch b
    returning global_position)
  select count(*)::integer, max(i.global_position) into v_count, v_last_position from inserted i;

  if p_limit is null or v_count < p_limit then
    -- The pass is complete: its snapshot is the new horizon.
    update chronicle.sequencer x
       set last_seq = st.last_seq + v_count,
           horizon_xmax = st.pass_xmax,
           horizon_xip = st.pass_xip,
           pass_xmax = null,
           pass_xip = null,
           pass_position = null,
           system_id = coalesce(v_system, x.system_id),
           sequenced_at = case when v_count > 0 then now() else x.sequenced_at end,
           updated_at = now();
  else
    update chronicle.sequencer x
       set last_seq = st.last_seq + v_count,
           pass_xmax = st.pass_xmax,
           pass_xip = st.pass_xip,
           pass_position = v_last_position,
           sequenced_at = now(),
           updated_at = now();
  end if;
  if v_count > 0 then
    -- Followers re-read from their cursor: the payload only says who sequenced.
    perform pg_notify('chronicle_events', coalesce(p_origin, ''));
  end if;
  return query select v_count, st.last_seq + v_count, coalesce(v_count >= p_limit, false), v_fresh;
end
$$;

-- A new database starts with its horizon now; sequence_events() takes it from there.
insert into chronicle.sequencer (horizon_xmax, horizon_xip, system_id)
select pg_snapshot_xmax(s), array(select pg_snapshot_xip(s)), chronicle.system_identifier()
  from pg_current_snapshot() s;

-- ----- import: history brought over verbatim ----------------------------------------------

-- Appends exported events to a stream keeping their ids, versions and recorded_at, so the
-- projections in the target database build the same rows (and the sequencer orders them as
-- they are imported: an export imported whole into an empty database keeps every seq). Importing the same events again
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
  return query select v_count, 0;
end
$$;
