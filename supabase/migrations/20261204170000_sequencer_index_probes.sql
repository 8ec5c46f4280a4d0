-- The sequencer's idle check and its passes find their candidates through
-- events_tx_position_idx instead of scanning chronicle.events: with the horizon's conditions
-- written as one OR, or joined to the sequencer's row, every idle poll read the whole log
-- (about 130 ms at 400,000 events) and so did every pass (about 80 ms). A pass takes its
-- snapshot after the sequencer's lock (an assignment kept the older one, which looked like a
-- restore and sequenced by a scan of the whole log) and is planned with its own values.

CREATE OR REPLACE FUNCTION chronicle.sequence_events(p_limit integer DEFAULT 10000, p_origin text DEFAULT NULL::text)
 RETURNS TABLE(sequenced integer, last_seq bigint, more boolean, fresh boolean)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_custom_plan'
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
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
$function$;

CREATE OR REPLACE FUNCTION chronicle.sequencer_pending()
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
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
$function$;

select chronicle.apply_runtime_privileges();
