-- The log's order (supabase/schemas/01_log.sql, "the sequencer"): committed events get a dense
-- seq in chronicle.event_seq, assigned after commit by chronicle.sequence_events(), and every
-- reader of the whole log reads by it. Before this, readers ordered by (transaction id, global
-- position), which inverted a stream's versions under concurrency, meant nothing after a
-- restore into another server, and waited on long transactions in every database.
--
-- This migration sequences the existing log once, in global position order (within a stream,
-- version order), in one statement. Cursors handed out before it ('<xid>:<position>') are
-- refused with an explanation. The async projections, whose cursors were such pairs, are
-- rebuilt from the log by the server's daemon (their tables keep serving meanwhile); runs in
-- flight are stopped (start them again), and snapshots made before cannot seed a rebuild.
--
-- The append no longer notifies followers: the sequencer does, once per batch.

-- ----- the append ----------------------------------------------------------------------------

drop index chronicle.events_type_tx_position_idx;
drop function chronicle.append_events(text, text, integer, jsonb, uuid, boolean);
drop function chronicle.append_events(text, text, integer, jsonb, uuid);

CREATE OR REPLACE FUNCTION chronicle.append_events(p_stream_id text, p_stream_type text, p_expected_version integer, p_events jsonb, p_owner_id uuid DEFAULT NULL::uuid)
 RETURNS TABLE(event_id uuid, stream_version integer, global_position bigint, recorded_at timestamp with time zone, duplicate boolean)
 LANGUAGE plpgsql
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

CREATE OR REPLACE FUNCTION chronicle.import_events(p_stream_id text, p_events jsonb, p_owner_id uuid DEFAULT NULL::uuid)
 RETURNS TABLE(written integer, skipped integer)
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- ----- the sequencer -------------------------------------------------------------------------

create table chronicle.event_seq (
  seq             bigint primary key,
  global_position bigint not null unique
);

create table chronicle.sequencer (
  id               boolean primary key default true check (id),
  last_seq         bigint not null default 0,
  horizon_xmax     xid8 not null,
  horizon_xip      xid8[] not null default '{}',
  pass_xmax        xid8,
  pass_xip         xid8[],
  pass_position    bigint,
  system_id        bigint,
  lease_owner      text,
  lease_expires_at timestamptz,
  sequenced_at     timestamptz,
  updated_at       timestamptz not null default now()
);

CREATE OR REPLACE FUNCTION chronicle.system_identifier()
 RETURNS bigint
 LANGUAGE plpgsql
 STABLE
AS $function$
begin
  return (select system_identifier from pg_control_system());
exception when others then
  return null;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.sequencer_pending()
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select st.pass_xmax is not null
      or st.system_id is distinct from coalesce(chronicle.system_identifier(), st.system_id)
      or pg_snapshot_xmax(pg_current_snapshot()) < coalesce(st.pass_xmax, st.horizon_xmax)
      or exists (
           select 1 from chronicle.events e
            where (e.transaction_id >= st.horizon_xmax or e.transaction_id = any (st.horizon_xip))
              and pg_visible_in_snapshot(e.transaction_id, pg_current_snapshot())
              and not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position))
    from chronicle.sequencer st
$function$;

CREATE OR REPLACE FUNCTION chronicle.sequence_events(p_limit integer DEFAULT 10000, p_origin text DEFAULT NULL::text)
 RETURNS TABLE(sequenced integer, last_seq bigint, more boolean, fresh boolean)
 LANGUAGE plpgsql
AS $function$
declare
  st chronicle.sequencer;
  v_now pg_snapshot;
  v_system bigint := chronicle.system_identifier();
  v_count integer;
  v_last_position bigint;
  v_fresh boolean;
begin
  select * into st from chronicle.sequencer for update;
  v_now := pg_current_snapshot();

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

  -- The pass's events: transactions finished at its snapshot and not at the horizon's.
  with batch as (
    select e.global_position
      from chronicle.events e
     where (e.transaction_id >= st.horizon_xmax or e.transaction_id = any (st.horizon_xip))
       and e.transaction_id < st.pass_xmax and e.transaction_id <> all (st.pass_xip)
       and e.global_position > st.pass_position
       and not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position)
     order by e.global_position
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
$function$;

-- The existing log, sequenced once: every event this statement sees, in global position order;
-- its snapshot is the sequencer's horizon (later commits are the sequencer's to take).
with snap as (select pg_current_snapshot() as s),
ordered as (
  insert into chronicle.event_seq (seq, global_position)
  select row_number() over (order by e.global_position), e.global_position
    from chronicle.events e
  returning seq)
insert into chronicle.sequencer (last_seq, horizon_xmax, horizon_xip, system_id, sequenced_at)
select coalesce((select max(o.seq) from ordered o), 0), pg_snapshot_xmax(snap.s),
       array(select pg_snapshot_xip(snap.s)), chronicle.system_identifier(), now()
  from snap;

-- ----- the projection engine reads by seq ----------------------------------------------------

-- Runs in flight cannot resume from a (transaction id, position) cursor: stopped, their
-- half-built schemas dropped.
do $$
declare
  r record;
begin
  for r in select id, target_schema from chronicle.projection_runs where state in ('running', 'cancelling') loop
    execute format('drop schema if exists %I cascade', r.target_schema);
    update chronicle.projection_runs
       set state = 'failed', phase = 'done', finished_at = now(), updated_at = now(),
           error = 'stopped by the upgrade that gave the log its own order; start it again'
     where id = r.id;
  end loop;
end
$$;

alter table chronicle.projections
  drop column cursor_xid,
  drop column cursor_position,
  add column cursor_seq bigint;

alter table chronicle.projection_runs
  drop column bound_xid,
  drop column bound_position,
  drop column cursor_xid,
  drop column cursor_position,
  add column bound_seq bigint,
  add column cursor_seq bigint;

-- An async projection's cursor was a (transaction id, position) pair: it is rebuilt from the
-- log in its new order (its tables keep serving until the rebuild swaps them).
update chronicle.projections
   set built_version = null, state = 'backfilling', updated_at = now()
 where mode = 'async' and exists (select 1 from chronicle.events);

CREATE OR REPLACE FUNCTION chronicle.projection_build_batch(p_run uuid, p_worker text, p_limit integer)
 RETURNS TABLE(applied integer, caught_up boolean, state text)
 LANGUAGE plpgsql
AS $function$
declare
  r chronicle.projection_runs;
  v_batch chronicle.events[];
  n integer;
  v_last_seq bigint;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found then
    raise exception 'no projection run %', p_run using errcode = 'P0002';
  end if;
  if r.state <> 'running' or r.worker is distinct from p_worker then
    return query select 0, true, r.state;
    return;
  end if;
  select array_agg(ev order by q.seq), max(q.seq)
    into v_batch, v_last_seq
    from (select q.seq, q.global_position from chronicle.event_seq q
           where q.seq > coalesce(r.cursor_seq, 0) and (r.bound_seq is null or q.seq <= r.bound_seq)
           order by q.seq
           limit p_limit) q
    join chronicle.events ev on ev.global_position = q.global_position;
  v_batch := coalesce(v_batch, '{}');
  n := cardinality(v_batch);
  if n > 0 then
    perform set_config('search_path', r.target_schema, true);
    perform chronicle.project_batch(v_batch, r.projections);
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.finish_projection_rebuild(p_run uuid, p_worker text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
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
    -- No append can be in flight after this, so every event is committed; sequencing them
    -- all here puts every event the live tables hold before the swap in the log's order.
    lock table chronicle.events in share row exclusive mode;
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_async_batch(p_name text, p_worker text, p_limit integer, p_lease_seconds integer)
 RETURNS TABLE(applied integer, held boolean, caught_up boolean)
 LANGUAGE plpgsql
AS $function$
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
  if n > 0 then
    update chronicle.projections x
       set cursor_seq = v_last_seq,
           events_applied = x.events_applied + n,
           last_event_at = v_last_at,
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
$function$;

-- ----- positions in the read models ---------------------------------------------------------

CREATE OR REPLACE FUNCTION chronicle.event_cursor(e chronicle.events)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select e.global_position::text
$function$;

-- ----- who may read the order ----------------------------------------------------------------

-- As the events themselves (supabase/schemas/06_security.sql): where auth.uid() exists, a
-- reader sees the places of the events it may read.
do $$
declare
  t text;
begin
  if to_regprocedure('auth.uid()') is null then
    return;
  end if;
  alter table chronicle.event_seq enable row level security;
  create policy event_seq_owner_reads on chronicle.event_seq for select using (
    exists (select 1 from chronicle.events e join chronicle.streams s on s.stream_id = e.stream_id
             where e.global_position = event_seq.global_position and s.owner_id = (select auth.uid())));
  foreach t in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = t) then
      execute format('grant select on chronicle.event_seq to %I', t);
    end if;
  end loop;
end
$$;
