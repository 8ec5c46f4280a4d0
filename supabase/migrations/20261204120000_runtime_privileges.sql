-- runtime_privileges: the service's role may also prune LangGraph checkpoints (chronicle.prune_graph_checkpoints, 20261204110000_graph_retention.sql); the grants are applied again.

CREATE OR REPLACE FUNCTION chronicle.apply_runtime_privileges()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
  -- Blobs: written by files and large values; deleted only by a purge, once nothing names them.
  grant insert, delete on chronicle.blobs to chronicle_runtime;
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
$function$;

select chronicle.apply_runtime_privileges();
