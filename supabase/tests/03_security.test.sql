-- Row-level security for apps that read Chronicle's tables straight through Supabase: a
-- reader sees its own rows and nobody else's, in the log and in every read model, and
-- cannot write the log. Needs auth.uid() (Supabase's, or the shim `pnpm test` installs).
-- Run by `supabase test db` and by `pnpm test` (packages/store/test/sql.int.test.ts).
begin;
select plan(16);

select is(
  (select count(*) from pg_class c
    where c.relnamespace = 'chronicle'::regnamespace and c.relkind = 'r'
      and c.relname not in ('schema_migrations', 'projections', 'projection_runs', 'sequencer')
      and not c.relrowsecurity),
  0::bigint, 'every table of the log and the read models has row-level security');
select is(
  (select count(*) from pg_class c
    where c.relnamespace = 'chronicle'::regnamespace and c.relkind = 'r' and c.relrowsecurity
      and not exists (select 1 from pg_policy p where p.polrelid = c.oid)),
  0::bigint, 'and a policy that lets its owner read');

-- Alice's and Bob's sessions, one message each.
select chronicle.append_events(
  'session-' || s.id, 'session', -2,
  jsonb_build_array(
    jsonb_build_object('type', 'SessionStarted', 'event_id', gen_random_uuid(),
      'data', jsonb_build_object('sessionId', s.id, 'ownerId', s.owner, 'title', s.title, 'metadata', '{}'::jsonb,
                                 'externalKey', null)),
    jsonb_build_object('type', 'MessageAppended', 'event_id', gen_random_uuid(),
      'data', jsonb_build_object('messageId', gen_random_uuid(), 'seq', 1, 'role', 'user', 'content', s.title,
                                 'metadata', '{}'::jsonb))),
  s.owner)
  from (values ('00000000-0000-4000-8000-0000000000d1'::uuid, '00000000-0000-4000-8000-0000000000a1'::uuid, 'alice'),
               ('00000000-0000-4000-8000-0000000000d2'::uuid, '00000000-0000-4000-8000-0000000000b1'::uuid, 'bob'))
       as s(id, owner, title);

-- Their places in the log's order, as the sequencer gives them once this transaction commits.
insert into chronicle.event_seq (seq, global_position)
select (select last_seq from chronicle.sequencer) + row_number() over (order by e.global_position), e.global_position
  from chronicle.events e
 where not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position);

-- A reader like Supabase's `authenticated` role: a role of this transaction only, named at
-- random so that concurrent runs on one server do not meet.
do $$
declare
  v_role text := 'chronicle_sql_test_' || substr(md5(random()::text), 1, 12);
begin
  execute format('create role %I nologin', v_role);
  execute format('grant usage on schema chronicle, auth to %I', v_role);
  execute format('grant select on all tables in schema chronicle to %I', v_role);
  execute format('grant execute on function auth.uid() to %I', v_role);
  execute format('set local role %I', v_role);
end
$$;
select set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-0000000000a1', true);

select results_eq('select title from chronicle.sessions', $$ values ('alice'::text) $$,
                  'a reader sees only its own sessions');
select results_eq('select content from chronicle.messages', $$ values ('alice'::text) $$,
                  'only its own messages');
select is((select count(*) from chronicle.events), 2::bigint, 'only its own events');
select is((select count(*) from chronicle.streams), 1::bigint, 'only its own streams');
select is((select count(*) from chronicle.event_seq), 2::bigint, 'only its own events'' places in the log''s order');
select is((select count(*) from chronicle.session_summary), 1::bigint,
          'the analytics views apply the same rules (security invoker)');
select throws_ok(
  $$ insert into chronicle.events (stream_id, stream_version, event_id, type, data)
     values ('session-00000000-0000-4000-8000-0000000000d1', 3, gen_random_uuid(), 'Forged', '{}') $$,
  '42501', null, 'a reader cannot write the log');

select set_config('request.jwt.claim.sub', '', true);
select is((select count(*) from chronicle.sessions), 0::bigint, 'an anonymous reader sees nothing');

reset role;

-- The service's own role (chronicle_runtime): every row, whoever's claim is set, since the API
-- checks ownership itself; writes only through the append functions.
set local role chronicle_runtime;
select set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-0000000000a1', true);
select is((select count(*) from chronicle.sessions), 2::bigint, 'the service''s role reads every session');
select is((select count(*) from chronicle.events), 4::bigint, 'and every event');
select throws_ok(
  $$ update chronicle.streams set version = 7 $$,
  '42501', null, 'the service''s role cannot move a stream''s version');
select throws_ok(
  $$ alter table chronicle.events disable trigger events_no_update_delete $$,
  '42501', null, 'nor disable the log''s append-only trigger');
select throws_ok(
  $$ select * from chronicle.import_events('session-00000000-0000-4000-8000-0000000000d9',
       '[{"version": 1, "event_id": "00000000-0000-4000-8000-00000000e0f9", "type": "SessionStarted",
          "schema_version": 1, "data": {}, "metadata": {}, "recorded_at": "2001-01-01T00:00:00Z"}]'::jsonb) $$,
  '42501', null, 'nor import back-dated history');
select is(
  (select stream_version from chronicle.append_events(
     'session-00000000-0000-4000-8000-0000000000d1', 'session', 2,
     '[{"event_id": "00000000-0000-4000-8000-00000000e0f8", "type": "SessionUpdated",
        "data": {"title": "renamed"}}]'::jsonb)),
  3, 'it appends through chronicle.append_events');

reset role;
select * from finish();
rollback;
