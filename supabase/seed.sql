-- Local development seed (`supabase db reset` runs it after the migrations).
-- One demo session with a short conversation, written the only way Chronicle writes: as
-- events through chronicle.append_events, so the read models are projected as usual.
-- Owner 00000000-0000-4000-8000-000000000000 is the server's development-mode user.

select chronicle.append_events(
  'session-0b6f2c7e-5a4d-4c3b-9a1e-6d5f4e3c2b1a',
  'session',
  -2, -- the stream must not exist yet
  jsonb_build_array(
    jsonb_build_object(
      'event_id', '7a1d0c9e-0000-4000-8000-000000000001',
      'type', 'SessionStarted',
      'data', jsonb_build_object(
        'sessionId', '0b6f2c7e-5a4d-4c3b-9a1e-6d5f4e3c2b1a',
        'ownerId', '00000000-0000-4000-8000-000000000000',
        'title', 'Demo: plan a small CLI',
        'metadata', jsonb_build_object('seed', true),
        'externalKey', null)),
    jsonb_build_object(
      'event_id', '7a1d0c9e-0000-4000-8000-000000000002',
      'type', 'MessageAppended',
      'data', jsonb_build_object(
        'messageId', '7a1d0c9e-1000-4000-8000-000000000001',
        'seq', 1, 'role', 'user',
        'content', 'Write a CLI that counts words in a file.',
        'metadata', '{}'::jsonb, 'createdAt', null)),
    jsonb_build_object(
      'event_id', '7a1d0c9e-0000-4000-8000-000000000003',
      'type', 'MessageAppended',
      'data', jsonb_build_object(
        'messageId', '7a1d0c9e-1000-4000-8000-000000000002',
        'seq', 2, 'role', 'assistant',
        'content', 'Here is a plan: read the file, split on whitespace, print the count.',
        'metadata', jsonb_build_object('model', 'demo'), 'createdAt', null))
  ),
  '00000000-0000-4000-8000-000000000000'
)
where not exists (
  select 1 from chronicle.streams where stream_id = 'session-0b6f2c7e-5a4d-4c3b-9a1e-6d5f4e3c2b1a'
);
