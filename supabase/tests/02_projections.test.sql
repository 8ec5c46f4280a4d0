-- The projections' rules: an append updates the read models in its own transaction, a
-- rollback and a fork compute the effective history, a rebuild reproduces the same rows,
-- and the registry refuses a handler that does not exist or a version that goes back. Runs are
-- fenced by their claim, failed runs leave nothing behind and are retried with back-off, and
-- the set-wise batch path serves only the handler versions it restates.
-- Run by `supabase test db` and by `pnpm test` (packages/store/test/sql.int.test.ts).
begin;
select plan(23);

-- A session of four events: started, two messages, then a rollback to version 2.
select chronicle.append_events(
  'session-00000000-0000-4000-8000-0000000000b1', 'session', -2,
  '[{"event_id": "00000000-0000-4000-8000-00000000b001", "type": "SessionStarted",
     "data": {"sessionId": "00000000-0000-4000-8000-0000000000b1", "ownerId": "00000000-0000-4000-8000-0000000000f1",
              "title": "first", "metadata": {}, "externalKey": null}},
    {"event_id": "00000000-0000-4000-8000-00000000b002", "type": "MessageAppended",
     "data": {"messageId": "00000000-0000-4000-8000-00000000c001", "seq": 1, "role": "user", "content": "one", "metadata": {}}},
    {"event_id": "00000000-0000-4000-8000-00000000b003", "type": "MessageAppended",
     "data": {"messageId": "00000000-0000-4000-8000-00000000c002", "seq": 2, "role": "assistant", "content": "two", "metadata": {}}}]'::jsonb,
  '00000000-0000-4000-8000-0000000000f1');

select results_eq(
  $$ select title, status, version, message_count from chronicle.sessions
      where id = '00000000-0000-4000-8000-0000000000b1' $$,
  $$ values ('first'::text, 'active'::text, 3, 2) $$,
  'the append''s own transaction sees the session it started, at its version, with its messages counted');
select results_eq(
  $$ select seq, content from chronicle.messages where session_id = '00000000-0000-4000-8000-0000000000b1' order by seq $$,
  $$ values (1, 'one'::text), (2, 'two'::text) $$,
  'each MessageAppended is a message row');

select chronicle.append_events(
  'session-00000000-0000-4000-8000-0000000000b1', 'session', 3,
  '[{"event_id": "00000000-0000-4000-8000-00000000b004", "type": "SessionRolledBack", "data": {"toVersion": 2}}]'::jsonb);

select is(
  (select effective from chronicle.sessions where id = '00000000-0000-4000-8000-0000000000b1'),
  '{[1,3),[4,5)}'::int4multirange,
  'a rollback to version 2 makes versions 1-2 and the rollback itself effective');
select is(
  (select message_count from chronicle.sessions where id = '00000000-0000-4000-8000-0000000000b1'), 1,
  'the reverted message no longer counts');
select is(
  chronicle.effective_versions('00000000-0000-4000-8000-0000000000b1', 3), '{[1,4)}'::int4multirange,
  'as of version 3 the session read versions 1 to 3');

-- A fork of the first session as of version 3 (both messages).
select chronicle.append_events(
  'session-00000000-0000-4000-8000-0000000000b2', 'session', -2,
  '[{"event_id": "00000000-0000-4000-8000-00000000b005", "type": "SessionForked",
     "data": {"sessionId": "00000000-0000-4000-8000-0000000000b2", "ownerId": "00000000-0000-4000-8000-0000000000f1",
              "parentId": "00000000-0000-4000-8000-0000000000b1", "atVersion": 3, "title": "fork", "metadata": {},
              "externalKey": null}}]'::jsonb,
  '00000000-0000-4000-8000-0000000000f1');
select results_eq(
  $$ select parent_id, parent_version, message_count from chronicle.sessions
      where id = '00000000-0000-4000-8000-0000000000b2' $$,
  $$ values ('00000000-0000-4000-8000-0000000000b1'::uuid, 3, 2) $$,
  'a fork records its parent and starts with the parent''s content as of the fork point');

-- A rebuild reproduces every row.
create temp table before_sessions on commit drop as select * from chronicle.sessions;
create temp table before_messages on commit drop as select * from chronicle.messages;
select is(chronicle.rebuild_read_models(), 5::bigint, 'the stop-the-world rebuild replays every event');
select set_eq('select * from chronicle.sessions', 'select * from before_sessions',
              'rebuilt sessions equal the inline ones');
select set_eq('select * from chronicle.messages', 'select * from before_messages',
              'rebuilt messages equal the inline ones');

-- The registry.
select throws_ok(
  $$ select chronicle.register_projection('nothing_here', 1, 'inline', 'chronicle.no_such_handler', array['sessions']) $$,
  '22023', null, 'a projection whose handler does not exist is refused');
select throws_ok(
  $$ select chronicle.register_projection('sessions', 0, 'inline', 'chronicle.project_session', array['sessions']) $$,
  '22023', null, 'a projection cannot go back to an older version');
select ok(
  (select prosrc from pg_proc where oid = 'chronicle.project(chronicle.events)'::regprocedure) like '%project_session%',
  'the trigger''s dispatcher runs the inline projections');
select ok(
  (select prosrc from pg_proc where oid = 'chronicle.project(chronicle.events)'::regprocedure) not like '%project_activity%',
  'and not the async ones');
select results_eq(
  $$ select name, mode, state from chronicle.projections order by name $$,
  $$ values ('activity'::text, 'async'::text, 'live'::text), ('files', 'inline', 'live'), ('graph', 'inline', 'live'),
            ('jobs', 'inline', 'live'), ('sandboxes', 'inline', 'live'), ('sessions', 'inline', 'live') $$,
  'the built-in projections are registered and live');

-- A run's writes are fenced by its claim: a worker that lost it (an older generation) changes nothing.
select chronicle.register_projection('jobs', 2, 'inline', 'chronicle.project_job', array['jobs', 'tasks', 'artifacts'],
                                     array['job']);
insert into chronicle.projection_runs (id, kind, projections, target_schema, state, worker, generation, heartbeat_at)
values ('00000000-0000-4000-8000-0000000000e1', 'rebuild', array['jobs'], 'chronicle_build_fence', 'running', 'w-new', 2, now());
select chronicle.prepare_projection_build('00000000-0000-4000-8000-0000000000e1', 'w-new', 2);
select results_eq(
  $$ select state from chronicle.projection_build_batch('00000000-0000-4000-8000-0000000000e1', 'w-new', 1, 10) $$,
  $$ values ('taken'::text) $$,
  'a build batch under an older claim is refused');
select throws_ok(
  $$ select chronicle.finish_projection_rebuild('00000000-0000-4000-8000-0000000000e1', 'w-old', 2) $$,
  '55000', null, 'another worker cannot swap the run in');
select is(
  chronicle.fail_projection_run('00000000-0000-4000-8000-0000000000e1', 'w-new', 1, 'late'), false,
  'a worker that lost the run cannot mark it failed');
select is(
  (select state from chronicle.projection_runs where id = '00000000-0000-4000-8000-0000000000e1'), 'running',
  'so it stays running');
select is(
  chronicle.fail_projection_run('00000000-0000-4000-8000-0000000000e1', 'w-new', 2, 'it broke'), true,
  'the holder marks it failed');
select results_eq(
  $$ select r.state, r.error, p.state, p.last_error like 'rebuild to v2 failed (run %): it broke',
            to_regnamespace('chronicle_build_fence') is null
       from chronicle.projection_runs r, chronicle.projections p
      where r.id = '00000000-0000-4000-8000-0000000000e1' and p.name = 'jobs' $$,
  $$ values ('failed'::text, 'it broke'::text, 'failed'::text, true, true) $$,
  'with its error, on the projection too, and its schema dropped');
select ok(
  chronicle.projection_retry_at('jobs', 10, 600) between now() + interval '9 seconds' and now() + interval '11 seconds',
  'the first retry waits the base back-off');
insert into chronicle.projection_runs (id, kind, projections, target_schema, state, started_at, finished_at)
values ('00000000-0000-4000-8000-0000000000e2', 'rebuild', array['jobs'], 'chronicle_build_fence2', 'failed',
        now() + interval '1 second', now() + interval '1 second');
select ok(
  chronicle.projection_retry_at('jobs', 10, 600) between now() + interval '20 seconds' and now() + interval '22 seconds',
  'the second waits twice as long');

-- The set-wise batch path serves the handler versions it restates, and nothing else.
select chronicle.register_projection('activity', 2, 'async', 'chronicle.project_activity',
                                     array['activity_streams', 'activity_daily', 'activity_daily_drafts'],
                                     array['session', 'job']);
select results_eq(
  $$ select chronicle.project_batch_setwise('sessions'), chronicle.project_batch_setwise('activity') $$,
  $$ values (true, false) $$,
  'a bumped version takes the per-event path');

select * from finish();
rollback;
