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
