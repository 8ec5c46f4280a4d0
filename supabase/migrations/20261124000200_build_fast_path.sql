-- Chronicle: set-based projection of a build batch.
--
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
