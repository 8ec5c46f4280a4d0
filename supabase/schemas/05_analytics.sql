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
