-- A batch appended by chronicle.append_events is projected set-wise, as a group commit's
-- appends are: its insert steps past the row trigger and chronicle.project_inserted folds the
-- batch (one insert into messages and one update of the session for a batch of messages, event
-- by event otherwise); append_group shares that function. A single event still goes through
-- the trigger. And the version conflict (CH409) in one spelling,
-- chronicle.version_conflict_message and version_conflict_detail, used by both append
-- functions (they were written out in each).

CREATE OR REPLACE FUNCTION chronicle.append_events(p_stream_id text, p_stream_type text, p_expected_version integer, p_events jsonb, p_owner_id uuid DEFAULT NULL::uuid)
 RETURNS TABLE(event_id uuid, stream_version integer, global_position bigint, recorded_at timestamp with time zone, duplicate boolean)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.append_group(p_appends jsonb)
 RETURNS TABLE(append integer, event_id uuid, stream_version integer, global_position bigint, recorded_at timestamp with time zone, duplicate boolean, error_code text, error_message text, error_detail text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_inserted(p_events chronicle.events[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.version_conflict_detail(p_current integer, p_expected integer)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select jsonb_build_object('expected', p_expected, 'actual', p_current)::text
$function$;

CREATE OR REPLACE FUNCTION chronicle.version_conflict_message(p_stream_id text, p_current integer, p_expected integer)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select format('stream %s is at version %s, expected %s', p_stream_id, p_current,
                case p_expected when -2 then 'no stream' when -3 then 'an existing stream'
                     else p_expected::text end)
$function$;

select chronicle.apply_runtime_privileges();
