-- A job's tasks and artifacts in page order: their pages order by (created_at, id) within a
-- job, and the only index was the primary key (job_id, id), so every page read and sorted all
-- of the job's rows. Now a page reads about a page.

CREATE INDEX artifacts_job_created_idx ON chronicle.artifacts USING btree (job_id, created_at, artifact_id);

CREATE INDEX tasks_job_created_idx ON chronicle.tasks USING btree (job_id, created_at, task_id);

select chronicle.apply_runtime_privileges();
