-- Chronicle schema, area 6 of 7: who may read what, for apps that read Chronicle's tables
-- straight through Supabase (PostgREST, supabase-js) with a user's JWT.
--
-- Chronicle itself connects as the tables' owner, which row-level security does not restrict,
-- so the service is unaffected; writes go through the API (chronicle.append_events) only.
-- The policies name no role, so they hold for every role that is not the owner and lacks
-- BYPASSRLS (Supabase's `authenticated` and `anon`; `service_role` bypasses them). Each one
-- calls auth.uid() as `(select auth.uid())`, which Postgres evaluates once per statement
-- rather than once per row (what Supabase recommends for tables of any size).
--
-- They need Supabase's auth.uid(). On a database without it (plain Postgres, the embedded
-- database) this file enables nothing; tests install a minimal auth shim first. A rebuild's
-- swap copies every policy and grant of a table to its new copy (02_projection_engine.sql).

do $$
declare
  t text;
begin
  if to_regprocedure('auth.uid()') is null then
    raise notice 'auth.uid() does not exist: row-level security policies are not installed';
    return;
  end if;

  -- Tables with an owner column: the owner's rows.
  foreach t in array array['sessions', 'files', 'jobs', 'sandboxes', 'streams', 'graph_threads',
                           'graph_checkpoints', 'activity_streams', 'activity_daily',
                           'activity_daily_drafts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format('create policy %I on chronicle.%I for select using (owner_id = (select auth.uid()))',
                   t || '_owner_reads', t);
  end loop;

  -- A session's content: rows of the sessions the user owns.
  foreach t in array array['session_rollbacks', 'session_updates', 'messages', 'revisions', 'drafts',
                           'hole_resolutions', 'session_files', 'session_file_detachments',
                           'tool_runs', 'checkpoints'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.sessions s where s.id = session_id and s.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- A job's tasks and artifacts: rows of the jobs the user owns.
  foreach t in array array['tasks', 'artifacts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.jobs j where j.id = job_id and j.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- A thread's channel values and pending writes: rows of the threads the user owns.
  foreach t in array array['graph_blobs', 'graph_writes'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.graph_threads g where g.id = graph_id and g.owner_id = (select auth.uid())))',
      t || '_owner_reads', t);
  end loop;

  -- The log: events of the streams the user owns.
  alter table chronicle.events enable row level security;
  create policy events_owner_reads on chronicle.events for select using (
    exists (select 1 from chronicle.streams s
             where s.stream_id = events.stream_id and s.owner_id = (select auth.uid())));

  -- The log's order: the places of the events the user may read.
  alter table chronicle.event_seq enable row level security;
  create policy event_seq_owner_reads on chronicle.event_seq for select using (
    exists (select 1 from chronicle.events e join chronicle.streams s on s.stream_id = e.stream_id
             where e.global_position = event_seq.global_position and s.owner_id = (select auth.uid())));

  -- Blobs: the bytes of files the user owns.
  alter table chronicle.blobs enable row level security;
  create policy blobs_owner_reads on chronicle.blobs for select using (
    exists (select 1 from chronicle.files f where f.sha256 = blobs.sha256 and f.owner_id = (select auth.uid())));

  -- Supabase's API roles may read (subject to the policies above), never write.
  foreach t in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = t) then
      execute format('grant usage on schema chronicle to %I', t);
      execute format('grant select on chronicle.streams, chronicle.events, chronicle.sessions,
                        chronicle.session_rollbacks, chronicle.session_updates, chronicle.messages,
                        chronicle.revisions, chronicle.drafts, chronicle.hole_resolutions,
                        chronicle.session_files, chronicle.session_file_detachments, chronicle.tool_runs,
                        chronicle.checkpoints, chronicle.files, chronicle.blobs, chronicle.jobs, chronicle.tasks,
                        chronicle.artifacts, chronicle.sandboxes, chronicle.graph_threads,
                        chronicle.graph_checkpoints, chronicle.graph_blobs, chronicle.graph_writes,
                        chronicle.session_summary, chronicle.user_analytics, chronicle.recent_activity,
                        chronicle.draft_validation_stats, chronicle.job_stats to %I', t);
      execute format('grant select on chronicle.event_seq to %I', t);
      if to_regclass('chronicle.schema_migrations') is not null then
        execute format('grant select on chronicle.schema_migrations to %I', t);
      end if;
    end if;
  end loop;
  if exists (select 1 from pg_roles where rolname = 'authenticated') then
    grant select on chronicle.activity_streams, chronicle.activity_daily, chronicle.activity_daily_drafts
      to authenticated;
  end if;
end
$$;

-- ----- the service's role: append and read, never rewrite ---------------------------------
--
-- Migrations run as the schema's owner (`chronicle migrate`); the service may run as a login
-- role that is a member of chronicle_runtime (README, "Database roles"). That role reads every
-- table, appends only through the append functions, and writes nothing else but the engine's
-- bookkeeping (projection runs and registry state), the sequencer's lease and blobs; it may
-- purge (erasure is its own audited function, 03_read_models.sql). It owns nothing, so it can
-- neither alter a table nor disable the log's append-only trigger. The functions that write
-- the log, the read models or build tables run as their owner (security definer, with a fixed
-- search_path); EXECUTE on every function is granted explicitly, none to PUBLIC.

alter function chronicle.append_events(text, text, integer, jsonb, uuid)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.append_group(jsonb)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.sequence_events(integer, text)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.prepare_projection_build(uuid, text, bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_build_batch(uuid, text, bigint, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.build_projection_indexes(uuid, text, bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.finish_projection_rebuild(uuid, text, bigint, integer, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.finish_projection_snapshot(uuid, text, bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_async_batch(text, text, integer, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_table_rows(text[], bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.fail_projection_run(uuid, text, bigint, text)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.drop_projection_schema(uuid)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.rebuild_read_models() security definer;

-- The role, its grants and its policies. A role belongs to the server, not to a database, so a
-- dump restored into another server may arrive without it (or restored with --no-privileges,
-- without the grants): `chronicle migrate` calls this again on every run, as the owner.
create function chronicle.apply_runtime_privileges() returns void
language plpgsql as $$
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
$$;

select chronicle.apply_runtime_privileges();
