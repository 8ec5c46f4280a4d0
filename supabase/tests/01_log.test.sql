-- The log's own rules: appends check the expected version, a retried batch writes nothing,
-- a batch is all or nothing, and nothing in the log can be changed or removed.
-- Run by `supabase test db` and by `pnpm test` (packages/store/test/sql.int.test.ts).
begin;
select plan(26);

select has_table('chronicle', 'events', 'the log is chronicle.events');
select has_table('chronicle', 'streams', 'streams are chronicle.streams');

create temp table appended on commit drop as
select * from chronicle.append_events(
  'session-00000000-0000-4000-8000-0000000000a1', 'session', -2,
  '[{"event_id": "00000000-0000-4000-8000-00000000e001", "type": "Noted", "data": {"n": 1}},
    {"event_id": "00000000-0000-4000-8000-00000000e002", "type": "Noted", "data": {"n": 2}}]'::jsonb,
  '00000000-0000-4000-8000-0000000000f1');

select results_eq(
  'select stream_version, duplicate from appended order by stream_version',
  $$ values (1, false), (2, false) $$,
  'a new stream''s first batch gets versions 1 and 2');
select is(
  (select version from chronicle.streams where stream_id = 'session-00000000-0000-4000-8000-0000000000a1'), 2,
  'the stream moves to the version of its last event');
select is(
  (select owner_id from chronicle.streams where stream_id = 'session-00000000-0000-4000-8000-0000000000a1'),
  '00000000-0000-4000-8000-0000000000f1'::uuid,
  'the append that creates a stream records its owner');

select throws_ok(
  $$ select * from chronicle.append_events('session-00000000-0000-4000-8000-0000000000a1', 'session', 1,
       '[{"event_id": "00000000-0000-4000-8000-00000000e003", "type": "Noted", "data": {}}]'::jsonb) $$,
  'CH409', 'stream session-00000000-0000-4000-8000-0000000000a1 is at version 2, expected 1',
  'an append expecting a version the stream has left is refused');
select is(
  (select error_code || ' ' || error_message || ' ' || error_detail
     from chronicle.append_group(
       '[{"stream_id": "session-00000000-0000-4000-8000-0000000000a1", "stream_type": "session",
          "expected_version": 1,
          "events": [{"event_id": "00000000-0000-4000-8000-00000000e00a", "type": "Noted", "data": {}}]}]'::jsonb)),
  'CH409 stream session-00000000-0000-4000-8000-0000000000a1 is at version 2, expected 1 {"actual": 2, "expected": 1}',
  'a group commit reports a version conflict in the words and detail of append_events');
select throws_ok(
  $$ select * from chronicle.append_events('session-00000000-0000-4000-8000-0000000000a1', 'session', -2,
       '[{"event_id": "00000000-0000-4000-8000-00000000e003", "type": "Noted", "data": {}}]'::jsonb) $$,
  'CH409', null, 'an append expecting no stream is refused on an existing one');
select throws_ok(
  $$ select * from chronicle.append_events('session-00000000-0000-4000-8000-0000000000a2', 'session', -3,
       '[{"event_id": "00000000-0000-4000-8000-00000000e004", "type": "Noted", "data": {}}]'::jsonb) $$,
  'CH409', null, 'an append expecting an existing stream is refused on a new one');

select results_eq(
  $$ select stream_version, duplicate from chronicle.append_events(
       'session-00000000-0000-4000-8000-0000000000a1', 'session', 0,
       '[{"event_id": "00000000-0000-4000-8000-00000000e001", "type": "Noted", "data": {"n": 1}},
         {"event_id": "00000000-0000-4000-8000-00000000e002", "type": "Noted", "data": {"n": 2}}]'::jsonb) $$,
  $$ values (1, true), (2, true) $$,
  'a retried batch returns the first result, whatever version it expected');
select throws_ok(
  $$ select * from chronicle.append_events('session-00000000-0000-4000-8000-0000000000a1', 'session', -1,
       '[{"event_id": "00000000-0000-4000-8000-00000000e001", "type": "Noted", "data": {"n": 99}}]'::jsonb) $$,
  'CH410', null, 'event ids already used by a different event are refused');
select throws_ok(
  $$ select * from chronicle.append_events('session-00000000-0000-4000-8000-0000000000a1', 'session', 2,
       '[{"event_id": "00000000-0000-4000-8000-00000000e005", "type": "Noted", "data": {}},
         {"event_id": "00000000-0000-4000-8000-00000000e006", "type": "not a type", "data": {}}]'::jsonb) $$,
  '23514', null, 'a batch with one invalid event is refused');
select is(
  (select count(*) from chronicle.events where stream_id = 'session-00000000-0000-4000-8000-0000000000a1'),
  2::bigint, 'retries and refused batches wrote nothing');
select is(
  (select version from chronicle.streams where stream_id = 'session-00000000-0000-4000-8000-0000000000a1'), 2,
  'nor moved the stream');

select throws_ok('update chronicle.events set data = ''{}''', 'CH001', null, 'events cannot be updated');
select throws_ok('delete from chronicle.events', 'CH001', null, 'events cannot be deleted');
select throws_ok('truncate chronicle.events cascade', 'CH001', null, 'the log cannot be truncated');
-- Erasure is the one exception, and only through the purge function: a flag set by hand to
-- anything but the transaction's id lets nothing through, and the function changes payloads only.
select throws_ok(
  $$ select set_config('chronicle.redacting', '1', true);
     update chronicle.events set data = '{}' $$,
  'CH001', null, 'a hand-set redaction flag does not open the log');
select throws_ok(
  $$ select set_config('chronicle.redacting', pg_current_xact_id()::text, true);
     update chronicle.events set stream_version = stream_version + 100 $$,
  'CH001', null, 'even with the flag, only payloads may change');
select is(
  chronicle.redact_event_data('MessageAppended', '{"messageId": "m", "seq": 1, "role": "user", "content": "secret", "metadata": {"a": 1}, "createdAt": null}'),
  '{"messageId": "m", "seq": 1, "role": "user", "content": "", "metadata": {}, "createdAt": null}'::jsonb,
  'a message is redacted to its structure: ids, seq and role kept, content and metadata blanked');
select is(
  chronicle.redact_event_data('SessionUpdated', '{"metadata": {"k": "secret"}}'),
  '{"metadata": {}}'::jsonb,
  'redaction replaces only the keys an event has');

select throws_ok(
  $$ select * from chronicle.import_events('session-00000000-0000-4000-8000-0000000000a1',
       '[{"event_id": "00000000-0000-4000-8000-00000000e007", "version": 4, "type": "Noted", "data": {},
          "recorded_at": "2026-01-01T00:00:00Z"}]'::jsonb) $$,
  'CH409', null, 'an import must continue its stream without a gap');

-- Retention of graph checkpoints, the other path that may change an event: cp-1 is pruned; its
-- event keeps its place and the list item cp-2 still rests on, and loses the rest.
select chronicle.append_events(
  'graph-00000000-0000-4000-8000-0000000000f1', 'graph', -2,
  jsonb_build_array(
    jsonb_build_object('type', 'GraphThreadStarted', 'event_id', gen_random_uuid(),
      'data', '{"graphId": "00000000-0000-4000-8000-0000000000f1", "ownerId": "00000000-0000-4000-8000-0000000000a1", "threadId": "t"}'::jsonb),
    jsonb_build_object('type', 'GraphCheckpointSaved', 'event_id', gen_random_uuid(),
      'data', '{"checkpointNs": "", "checkpointId": "cp-1", "parentCheckpointId": null,
                "checkpoint": {"type": "json", "data": "c2VjcmV0"}, "metadata": {"note": "secret"},
                "channelVersions": {"messages": "1", "topic": "1"},
                "blobs": [{"channel": "messages", "version": "1", "list": {"base": null, "keep": 0, "items": [{"type": "json", "data": "YQ=="}]}},
                          {"channel": "topic", "version": "1", "value": {"type": "json", "data": "c2VjcmV0"}}]}'::jsonb),
    jsonb_build_object('type', 'GraphCheckpointSaved', 'event_id', gen_random_uuid(),
      'data', '{"checkpointNs": "", "checkpointId": "cp-2", "parentCheckpointId": "cp-1",
                "checkpoint": {"type": "json", "data": "Yg=="}, "metadata": {},
                "channelVersions": {"messages": "2"},
                "blobs": [{"channel": "messages", "version": "2", "list": {"base": "1", "keep": 1, "items": [{"type": "json", "data": "Yg=="}]}}]}'::jsonb)),
  '00000000-0000-4000-8000-0000000000a1');
select is(
  chronicle.prune_graph_checkpoints('00000000-0000-4000-8000-0000000000f1', '', 'cp-1'), 1,
  'pruning redacts the events of the checkpoints up to the id');
select is(
  (select jsonb_build_array(e.stream_version, e.data -> 'checkpoint', e.data -> 'metadata', e.data -> 'channelVersions',
                            jsonb_path_query_array(e.data, '$.blobs[*].version'))
     from chronicle.events e
    where e.stream_id = 'graph-00000000-0000-4000-8000-0000000000f1' and e.data ->> 'checkpointId' = 'cp-1'),
  '[2, {"type": "json", "data": ""}, {}, {"messages": "1", "topic": "1"}, ["1"]]'::jsonb,
  'a pruned checkpoint keeps its place, its channel versions and the values kept ones rest on; its content goes');
select chronicle.append_events(
  'graph-00000000-0000-4000-8000-0000000000f1', 'graph', 3,
  '[{"type": "GraphCheckpointsPruned", "event_id": "00000000-0000-4000-8000-00000000e0f1",
     "data": {"checkpointNs": "", "keep": 1, "throughCheckpointId": "cp-1", "count": 1}}]'::jsonb);
select is(
  (select jsonb_agg(jsonb_build_array(b.channel, b.version, b.base_version) order by b.channel, b.version)
     from chronicle.graph_blobs b where b.graph_id = '00000000-0000-4000-8000-0000000000f1'),
  '[["messages", "2", null]]'::jsonb,
  'GraphCheckpointsPruned leaves only the values kept checkpoints name, a list stored whole when its base goes');
select is(
  chronicle.graph_value('00000000-0000-4000-8000-0000000000f1', '', 'messages', '2'),
  '{"items": [{"type": "json", "data": "YQ=="}, {"type": "json", "data": "Yg=="}]}'::jsonb,
  'and the kept checkpoint reads its list as before');

select * from finish();
rollback;
