-- Group commit set-wise: chronicle.append_group writes the common case (existing streams, one
-- append per stream, new ids) with one UPDATE of the streams and one INSERT of the events for
-- the whole group, and projects those rows itself (messages of sessions set-wise,
-- chronicle.project_session_messages); the trigger skips the rows it marks. Everything else
-- goes one by one as before.

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
begin
  if v_count = 0 then
    raise exception 'an append needs at least one event' using errcode = '22023';
  end if;
  -- Its events are projected by the trigger, one by one (02_projection_engine.sql).
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
    returning e.event_id, e.stream_version, e.global_position, e.recorded_at, false;
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
  v_event chronicle.events;
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
                     format('stream %s is at version %s, expected %s', c.stream_id, c.current,
                            case c.expected when -2 then 'no stream' when -3 then 'an existing stream'
                                 else c.expected::text end),
                     jsonb_build_object('expected', c.expected, 'actual', c.current)::text
                from checked c where c.conflict) r;
      perform set_config('chronicle.projecting', '', true);
      -- The inline projections of the rows inserted, in insert order: set-wise where they are
      -- all messages of sessions, otherwise one by one as the trigger would have.
      if v_events is not null and not chronicle.project_session_messages(v_events) then
        foreach v_event in array v_events loop
          perform chronicle.project(v_event);
        end loop;
      end if;
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

CREATE OR REPLACE FUNCTION chronicle.project_batch_setwise(p_name text)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_event()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
begin
  if current_setting('chronicle.projecting', true) = 'group' then
    return null;
  end if;
  perform chronicle.project(new);
  return null;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_session_messages(p_events chronicle.events[])
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- The runtime role's grants as both earlier migrations of this day left them in the schema
-- files: the rebuild's index builder (20261204150000) and no delete on blobs but through the
-- purge (20261204140000), whichever of the two ran last.
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
    chronicle.build_projection_indexes(uuid, text, bigint),
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
