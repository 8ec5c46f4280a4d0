-- Row-level security for apps that read Chronicle's tables straight through Supabase
-- (PostgREST, supabase-js) with a user's JWT: each user sees only their own rows.
--
-- Chronicle itself connects as the tables' owner, which row-level security does not restrict,
-- so the service is unaffected; writes go through the API (chronicle.append_events) only.
-- The policies name no role, so they hold for every role that is not the owner and lacks
-- BYPASSRLS (Supabase's `authenticated` and `anon`; `service_role` bypasses them).
--
-- They need Supabase's auth.uid(). On a database without it (plain Postgres, the embedded
-- database) this migration enables nothing; tests install a minimal auth shim first.

do $$
declare
  t text;
begin
  if to_regprocedure('auth.uid()') is null then
    raise notice 'auth.uid() does not exist: row-level security policies are not installed';
    return;
  end if;

  -- Tables with an owner column: the owner's rows.
  foreach t in array array['sessions', 'files', 'jobs', 'sandboxes', 'streams'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (owner_id = auth.uid())',
      t || '_owner_reads', t);
  end loop;

  -- A session's content: rows of the sessions the user owns.
  foreach t in array array['session_rollbacks', 'session_updates', 'messages', 'revisions', 'drafts',
                           'hole_resolutions', 'session_files', 'session_file_detachments',
                           'tool_runs', 'checkpoints'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.sessions s where s.id = session_id and s.owner_id = auth.uid()))',
      t || '_owner_reads', t);
  end loop;

  -- A job's tasks and artifacts: rows of the jobs the user owns.
  foreach t in array array['tasks', 'artifacts'] loop
    execute format('alter table chronicle.%I enable row level security', t);
    execute format(
      'create policy %I on chronicle.%I for select using (
         exists (select 1 from chronicle.jobs j where j.id = job_id and j.owner_id = auth.uid()))',
      t || '_owner_reads', t);
  end loop;

  -- The log: events of the streams the user owns.
  alter table chronicle.events enable row level security;
  create policy events_owner_reads on chronicle.events for select using (
    exists (select 1 from chronicle.streams s where s.stream_id = events.stream_id and s.owner_id = auth.uid()));

  -- Blobs: the bytes of files the user owns.
  alter table chronicle.blobs enable row level security;
  create policy blobs_owner_reads on chronicle.blobs for select using (
    exists (select 1 from chronicle.files f where f.sha256 = blobs.sha256 and f.owner_id = auth.uid()));

  -- Supabase's API roles may read (subject to the policies above), never write.
  foreach t in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = t) then
      execute format('grant usage on schema chronicle to %I', t);
      execute format('grant select on all tables in schema chronicle to %I', t);
    end if;
  end loop;
end
$$;

-- The analytics views read with the caller's rights, so the policies above apply to them too
-- (a view otherwise reads with its owner's rights and would show every user's rows).
alter view chronicle.session_summary set (security_invoker = true);
alter view chronicle.user_analytics set (security_invoker = true);
alter view chronicle.recent_activity set (security_invoker = true);
alter view chronicle.draft_validation_stats set (security_invoker = true);
alter view chronicle.job_stats set (security_invoker = true);
