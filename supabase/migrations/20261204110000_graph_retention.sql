-- graph_retention: a purge reaches the point-in-time snapshots (analytics_asof_<label>).

CREATE OR REPLACE FUNCTION chronicle.purge_session_snapshots(p_session_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'session-' || p_session_id::text;
  r chronicle.projection_runs;
  t record;
  e chronicle.events;
  v_count integer := 0;
begin
  for r in select * from chronicle.projection_runs x
            where x.kind = 'snapshot' and x.state = 'completed' and to_regnamespace(x.target_schema) is not null
            order by x.started_at loop
    for t in select c.relname::text as relname,
                    exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and a.attname = 'session_id' and not a.attisdropped) as keyed
               from pg_class c
              where c.relnamespace = to_regnamespace(r.target_schema) and c.relkind in ('r', 'p') loop
      if t.relname = 'sessions' then
        execute format('delete from %I.sessions where id = $1', r.target_schema) using p_session_id;
      elsif t.keyed then
        execute format('delete from %I.%I where session_id = $1', r.target_schema, t.relname) using p_session_id;
      end if;
    end loop;
    if 'sessions' = any (r.projections) and r.bound_seq is not null then
      -- As a build applies events: the handler's unqualified tables are the snapshot's.
      perform set_config('search_path', r.target_schema, true);
      for e in select x.* from chronicle.events x
                 join chronicle.event_seq q on q.global_position = x.global_position
                where x.stream_id = v_stream and q.seq <= r.bound_seq
                order by x.stream_version loop
        perform chronicle.project_session(e);
      end loop;
      perform set_config('search_path', 'pg_catalog, chronicle, pg_temp', true);
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.purge_session_stream(p_session_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'chronicle', 'pg_temp'
AS $function$
declare
  v_stream text := 'session-' || p_session_id::text;
  v_count integer;
  e chronicle.events;
begin
  perform set_config('chronicle.redacting', pg_current_xact_id()::text, true);
  update chronicle.events x
     set data = chronicle.redact_event_data(x.type, x.data),
         metadata = x.metadata - 'idempotencyKey' - 'fingerprint'
   where x.stream_id = v_stream;
  get diagnostics v_count = row_count;
  perform set_config('chronicle.redacting', '', true);

  delete from messages where session_id = p_session_id;
  delete from revisions where session_id = p_session_id;
  delete from drafts where session_id = p_session_id;
  delete from hole_resolutions where session_id = p_session_id;
  delete from session_files where session_id = p_session_id;
  delete from session_file_detachments where session_id = p_session_id;
  delete from tool_runs where session_id = p_session_id;
  delete from checkpoints where session_id = p_session_id;
  delete from session_rollbacks where session_id = p_session_id;
  delete from session_updates where session_id = p_session_id;
  delete from sessions where id = p_session_id;
  for e in select * from chronicle.events x where x.stream_id = v_stream order by x.stream_version loop
    perform chronicle.project_session(e);
  end loop;
  perform chronicle.purge_session_snapshots(p_session_id);
  return v_count;
end
$function$;

revoke all on function chronicle.purge_session_snapshots(uuid) from public;
