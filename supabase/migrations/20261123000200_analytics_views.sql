-- Analytics views over the read models (the views the seed documents asked for). They read
-- only effective content: what a rollback reverted is not counted. Tool runs and jobs are
-- never reverted. Every view carries owner_id so a caller can be limited to their own rows.

-- One row per session: its counters plus draft validation and timing.
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
       extract(epoch from (s.last_activity_at - s.created_at)) as active_seconds
  from chronicle.sessions s
  cross join lateral (
    select count(*) filter (where dr.valid) as valid_drafts,
           count(*) filter (where not dr.valid) as invalid_drafts
      from chronicle.drafts dr
     where dr.session_id = s.id and s.effective @> dr.version) d
  cross join lateral (
    select avg(hr.confidence) as avg_confidence
      from chronicle.hole_resolutions hr
     where hr.session_id = s.id and s.effective @> hr.version) h;

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
       greatest(s.last_activity_at, j.last_job_at) as last_activity_at
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
           max(updated_at) as last_job_at
      from chronicle.jobs
     group by owner_id) j on j.owner_id = o.owner_id;

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
       max(created_at) as last_job_at
  from chronicle.jobs
 group by owner_id, job_type;
