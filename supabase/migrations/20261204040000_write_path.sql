-- The write path (supabase/schemas/01_log.sql, 03_read_models.sql):
--   * group commit: chronicle.append_group, appends of different callers in one transaction,
--     each in its own subtransaction (its own version check and error), one commit for all;
--   * HOT updates: the stream's and the session's rows, updated by every append, keep no index
--     on the columns it changes (version, updated_at, last_activity_at, …) and leave room on
--     their pages (fillfactor 80), so those updates write no index entries and leave no bloat.

alter table chronicle.streams set (fillfactor = 80);
drop index chronicle.streams_owner_idx;
create index streams_owner_idx on chronicle.streams (owner_id, stream_type);

alter table chronicle.sessions set (fillfactor = 80);
drop index chronicle.sessions_owner_status_updated_idx;
drop index chronicle.sessions_active_idle_idx;

CREATE OR REPLACE FUNCTION chronicle.append_group(p_appends jsonb)
 RETURNS TABLE(append integer, event_id uuid, stream_version integer, global_position bigint, recorded_at timestamp with time zone, duplicate boolean, error_code text, error_message text, error_detail text)
 LANGUAGE plpgsql
AS $function$
declare
  a record;
  v_code text;
  v_message text;
  v_detail text;
begin
  for a in select x.elem, (x.ord - 1)::integer as i from jsonb_array_elements(p_appends) with ordinality x(elem, ord) loop
    begin
      return query
        select a.i, r.event_id, r.stream_version, r.global_position, r.recorded_at, r.duplicate,
               null::text, null::text, null::text
          from chronicle.append_events(a.elem ->> 'stream_id', a.elem ->> 'stream_type',
                                       (a.elem ->> 'expected_version')::integer, a.elem -> 'events',
                                       (a.elem ->> 'owner_id')::uuid) r;
    exception when others then
      get stacked diagnostics v_code = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      return query select a.i, null::uuid, null::integer, null::bigint, null::timestamptz, null::boolean,
                          v_code, v_message, v_detail;
    end;
  end loop;
end
$function$;
