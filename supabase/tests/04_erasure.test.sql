-- Erasure's own functions: one redaction (chronicle.redact_stream) that every purge function
-- shares and the runtime role cannot call on its own, and what the Purge service asks of the
-- log through functions instead of reading it: whether a stream was purged, the contents its
-- payloads name, and which of them nothing unpurged references any more.
-- Run by `supabase test db` and by `pnpm test` (packages/store/test/sql.int.test.ts).
begin;
select plan(21);

-- Contents in the blob store: a to f and 7, listed; 9, not listed.
create temp table h on commit drop as
select c as name, repeat(c, 64) as sha256 from unnest(array['a', 'b', 'c', 'd', 'e', 'f', '7']) as c;
insert into chronicle.blobs (sha256, size, content)
select h.sha256, 1, 'x'::bytea from h;
insert into chronicle.blobs (sha256, size, content) values (repeat('9', 64), 1, 'x'::bytea);

-- Session 1 (to be purged) attaches a and b, session 2 (kept) attaches b.
select chronicle.append_events(
  'session-' || s.id, 'session', -2,
  jsonb_build_array(
    jsonb_build_object('type', 'SessionStarted', 'event_id', gen_random_uuid(),
      'data', jsonb_build_object('sessionId', s.id, 'ownerId', '00000000-0000-4000-8000-0000000000a1',
                                 'title', 'secret title', 'metadata', '{}'::jsonb, 'externalKey', null),
      'metadata', '{"idempotencyKey": "k-1", "fingerprint": "f-1", "actor": "user"}'::jsonb),
    jsonb_build_object('type', 'MessageAppended', 'event_id', gen_random_uuid(),
      'data', jsonb_build_object('messageId', gen_random_uuid(), 'seq', 1, 'role', 'user',
                                 'content', 'secret message', 'metadata', '{}'::jsonb))) ||
  (select jsonb_agg(jsonb_build_object('type', 'FileAttached', 'event_id', gen_random_uuid(),
            'data', jsonb_build_object('fileId', gen_random_uuid(), 'sha256', h.sha256, 'name', 'secret.txt',
                                       'mimeType', 'text/plain', 'size', 1)) order by h.name)
     from h where h.name = any (s.attached)),
  '00000000-0000-4000-8000-0000000000a1')
  from (values ('00000000-0000-4000-8000-0000000000c1'::uuid, array['a', 'b']),
               ('00000000-0000-4000-8000-0000000000c2'::uuid, array['b'])) as s(id, attached);

select results_eq(
  $$ select n.name from chronicle.stream_blob_hashes(array['session-00000000-0000-4000-8000-0000000000c1']) x
       join h n on n.sha256 = x order by 1 $$,
  $$ values ('a'), ('b') $$,
  'stream_blob_hashes names the contents the payloads of the streams name');

select ok(not has_function_privilege('chronicle_runtime', 'chronicle.redact_stream(text)', 'execute'),
          'the runtime role cannot redact a stream but through a purge function');
select ok(not has_function_privilege('public', 'chronicle.redact_stream(text)', 'execute'),
          'nor can anyone else');
select ok(has_function_privilege('chronicle_runtime', 'chronicle.stream_purged_since(text, integer)', 'execute')
          and has_function_privilege('chronicle_runtime', 'chronicle.stream_blob_hashes(text[])', 'execute')
          and has_function_privilege('chronicle_runtime', 'chronicle.graph_checkpoint_hashes(uuid, text, text)', 'execute')
          and has_function_privilege('chronicle_runtime', 'chronicle.delete_unreferenced_blobs(text[])', 'execute'),
          'the runtime role may ask what a purge needs of the log');
select ok(not has_table_privilege('chronicle_runtime', 'chronicle.blobs', 'delete'),
          'and deletes blobs only through chronicle.delete_unreferenced_blobs');

select is(chronicle.purge_session_stream('00000000-0000-4000-8000-0000000000c1'), 4,
          'purge_session_stream redacts every event of the stream (chronicle.redact_stream) and counts them');
select is(
  (select jsonb_agg(jsonb_build_array(e.data ->> 'title', e.data ->> 'content', e.data ->> 'name', e.data ->> 'sha256',
                                      e.metadata) order by e.stream_version)
     from chronicle.events e where e.stream_id = 'session-00000000-0000-4000-8000-0000000000c1'),
  jsonb_build_array(
    jsonb_build_array(null, null, null, null, '{"actor": "user"}'::jsonb),
    jsonb_build_array(null, '', null, null, '{}'::jsonb),
    jsonb_build_array(null, null, 'redacted', repeat('a', 64), '{}'::jsonb),
    jsonb_build_array(null, null, 'redacted', repeat('b', 64), '{}'::jsonb)),
  'its payloads lose their content, hashes stay, metadata loses the request''s idempotency key and fingerprint');
select is(current_setting('chronicle.redacting', true), '', 'the redaction flag is cleared afterwards');
select throws_ok('update chronicle.events set data = ''{}''', 'CH001', null, 'so the log is append-only again');
select is((select title from chronicle.sessions where id = '00000000-0000-4000-8000-0000000000c2'), 'secret title',
          'another session keeps its content');

select ok(not chronicle.stream_purged_since('session-00000000-0000-4000-8000-0000000000c1', 1),
          'a stream is not purged until its purge is recorded');
select chronicle.append_events(
  'session-00000000-0000-4000-8000-0000000000c1', 'session', 4,
  '[{"type": "SessionPurged", "event_id": "00000000-0000-4000-8000-00000000e0c1",
     "data": {"reason": null, "throughVersion": 4}}]'::jsonb);
select ok(chronicle.stream_purged_since('session-00000000-0000-4000-8000-0000000000c1', 1)
          and chronicle.stream_purged_since('session-00000000-0000-4000-8000-0000000000c1', 5),
          'then it is, at and before the version of its purge');
select ok(not chronicle.stream_purged_since('session-00000000-0000-4000-8000-0000000000c1', 6),
          'but not since a later version');

-- A job that names c after its purge (an artifact it recorded later), one that named d before.
select chronicle.append_events(
  'job-' || j.id, 'job', -2,
  jsonb_build_array(
    jsonb_build_object('type', 'Noted', 'event_id', gen_random_uuid(), 'data', jsonb_build_object('sha256', j.before)),
    jsonb_build_object('type', 'JobPurged', 'event_id', gen_random_uuid(),
                       'data', '{"reason": null, "throughVersion": 1}'::jsonb)) ||
  case when j.after is null then '[]'::jsonb
       else jsonb_build_array(jsonb_build_object('type', 'Noted', 'event_id', gen_random_uuid(),
                                                 'data', jsonb_build_object('sha256', j.after))) end,
  '00000000-0000-4000-8000-0000000000a1')
  from (values ('00000000-0000-4000-8000-0000000000d1', null, repeat('c', 64)),
               ('00000000-0000-4000-8000-0000000000d2', repeat('d', 64), null)) as j(id, before, after);
select ok(not chronicle.stream_purged_since('job-00000000-0000-4000-8000-0000000000d1', 3),
          'a job that went on after its purge is not purged since');

-- A stored file that stays (e), one purged (f).
select chronicle.append_events(
  'file-' || f.id, 'file', -2,
  jsonb_build_array(jsonb_build_object('type', 'FileUploaded', 'event_id', gen_random_uuid(),
    'data', jsonb_build_object('fileId', f.id, 'ownerId', '00000000-0000-4000-8000-0000000000a1', 'sha256', f.sha256,
                               'name', 'secret.txt', 'mimeType', 'text/plain', 'size', 1))),
  '00000000-0000-4000-8000-0000000000a1')
  from (values ('00000000-0000-4000-8000-0000000000f1'::uuid, repeat('e', 64)),
               ('00000000-0000-4000-8000-0000000000f2'::uuid, repeat('f', 64))) as f(id, sha256);
select is(chronicle.purge_file_stream('00000000-0000-4000-8000-0000000000f2'), 1, 'purge_file_stream redacts the upload');
select chronicle.append_events(
  'file-00000000-0000-4000-8000-0000000000f2', 'file', 1,
  '[{"type": "FilePurged", "event_id": "00000000-0000-4000-8000-00000000e0f2", "data": {"reason": null}}]'::jsonb);

select is(chronicle.delete_unreferenced_blobs((select array_agg(sha256) from h)), 4,
          'delete_unreferenced_blobs deletes the listed contents nothing unpurged references');
select results_eq(
  $$ select coalesce(n.name, '9') from chronicle.blobs b left join h n using (sha256)
      where b.sha256 = any (array[repeat('9', 64)] || (select array_agg(sha256) from h)) order by 1 $$,
  $$ values ('9'), ('b'), ('c'), ('e') $$,
  'it keeps one a live session names, one a job named after its purge, a live file''s, and every one not listed');

-- A LangGraph thread whose checkpoint names a large value (7).
select chronicle.append_events(
  'graph-00000000-0000-4000-8000-0000000000b1', 'graph', -2,
  jsonb_build_array(
    jsonb_build_object('type', 'GraphThreadStarted', 'event_id', gen_random_uuid(),
      'data', '{"graphId": "00000000-0000-4000-8000-0000000000b1", "ownerId": "00000000-0000-4000-8000-0000000000a1", "threadId": "t"}'::jsonb),
    jsonb_build_object('type', 'GraphCheckpointSaved', 'event_id', gen_random_uuid(),
      'data', jsonb_build_object('checkpointNs', '', 'checkpointId', 'cp-1', 'parentCheckpointId', null,
                'checkpoint', '{"type": "json", "data": "c2VjcmV0"}'::jsonb,
                'metadata', jsonb_build_object('large', repeat('7', 64)),
                'channelVersions', '{"topic": "1"}'::jsonb,
                'blobs', '[{"channel": "topic", "version": "1", "value": {"type": "json", "data": "c2VjcmV0"}}]'::jsonb))),
  '00000000-0000-4000-8000-0000000000a1');
select results_eq(
  $$ select x from chronicle.graph_checkpoint_hashes('00000000-0000-4000-8000-0000000000b1', '', 'cp-1') x $$,
  $$ values (repeat('7', 64)) $$,
  'graph_checkpoint_hashes names the large values of the checkpoints up to the id');
select is_empty(
  $$ select x from chronicle.graph_checkpoint_hashes('00000000-0000-4000-8000-0000000000b1', '', 'cp-0') x $$,
  'and none of later ones');
select is(chronicle.purge_graph_stream('00000000-0000-4000-8000-0000000000b1'), 2,
          'purge_graph_stream redacts the thread through the same redaction');
select is(
  (select e.data from chronicle.events e
    where e.stream_id = 'graph-00000000-0000-4000-8000-0000000000b1' and e.stream_version = 2),
  '{"checkpointNs": "", "checkpointId": "cp-1", "parentCheckpointId": null,
    "checkpoint": {"type": "json", "data": ""}, "metadata": {}, "channelVersions": {"topic": "1"}, "blobs": []}'::jsonb,
  'a checkpoint keeps its ids, parent and channel versions; its bytes, metadata and values go');

select * from finish();
rollback;
