-- least_privilege: the service runs as a role that appends and reads but cannot rewrite the
-- log (supabase/schemas/06_security.sql, "the service's role"), and a cancelled run's or a
-- dropped snapshot's schema is dropped through chronicle.drop_projection_schema()
-- (supabase/schemas/02_projection_engine.sql). Both parts are copied from those files.

-- ----- dropping a run's schema ------------------------------------------------------------

-- Drops the schema a run built into (a rebuild's shadow tables, a snapshot's tables), for a
-- cancelled run or a dropped snapshot. Only a schema some run names can be dropped this way:
-- the service's role, which owns no schema, drops no other.
create function chronicle.drop_projection_schema(p_run uuid) returns void
language plpgsql as $$
declare
  v_schema text;
begin
  select r.target_schema into v_schema from chronicle.projection_runs r where r.id = p_run;
  if v_schema is null then
    raise exception 'projection run % does not exist', p_run using errcode = 'P0002';
  end if;
  execute format('drop schema if exists %I cascade', v_schema);
end
$$;

-- ----- the service's role: append and read, never rewrite ---------------------------------
--
-- Migrations run as the schema's owner (`chronicle migrate`); the service may run as a login
-- role that is a member of chronicle_runtime (README, "Database roles"). That role reads every
-- table, appends only through the append functions, and writes nothing else but the engine's
-- bookkeeping (projection runs and registry state), the sequencer's lease and blobs; it may
-- purge (erasure is its own audited function, 03_read_models.sql). It owns nothing, so it can
-- neither alter a table nor disable the log's append-only trigger. The functions that write
-- the log, the read models or build tables run as their owner (security definer, with a fixed
-- search_path); EXECUTE on every function is granted explicitly, none to PUBLIC.

alter function chronicle.append_events(text, text, integer, jsonb, uuid)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.append_group(jsonb)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.sequence_events(integer, text)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.prepare_projection_build(uuid, text, bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_build_batch(uuid, text, bigint, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.finish_projection_rebuild(uuid, text, bigint, integer, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.finish_projection_snapshot(uuid, text, bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_async_batch(text, text, integer, integer)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.projection_table_rows(text[], bigint)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.fail_projection_run(uuid, text, bigint, text)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.drop_projection_schema(uuid)
  security definer set search_path = pg_catalog, chronicle, pg_temp;
alter function chronicle.rebuild_read_models() security definer;

-- The role, its grants and its policies. A role belongs to the server, not to a database, so a
-- dump restored into another server may arrive without it (or restored with --no-privileges,
-- without the grants): `chronicle migrate` calls this again on every run, as the owner.
create function chronicle.apply_runtime_privileges() returns void
language plpgsql as $$
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
    chronicle.purge_file_stream(uuid)
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
$$;

select chronicle.apply_runtime_privileges();
