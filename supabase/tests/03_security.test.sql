-- Row-level security for apps that read Chronicle's tables straight through Supabase: a
-- reader sees its own rows and nobody else's, in the log and in every read model, and
-- cannot write the log. Needs auth.uid() (Supabase's, or the shim `pnpm test` installs).
-- Run by `supabase test db` and by `pnpm test` (packages/store/test/sql.int.test.ts).
begin;
select plan(10);

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
select * from finish();
rollback;
