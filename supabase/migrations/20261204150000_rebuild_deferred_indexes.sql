-- rebuild_deferred_indexes: a rebuild's (and a snapshot's) tables fill without their
-- secondary indexes, which chronicle.build_projection_indexes builds once the run has caught
-- up (the swap and a snapshot's end build any still missing); chronicle.project_batch reads
-- its batch from a temporary table filled once per batch, folds every session event but
-- starts, forks, rollbacks and purges set-wise, and reads back from the log only the events
-- it folds one by one. The runtime role may call build_projection_indexes.

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
    chronicle.build_projection_indexes(uuid, text, bigint),
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
    chronicle.purge_job_stream(uuid),
    chronicle.purge_graph_stream(uuid),
    chronicle.purge_sandbox_stream(uuid),
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

CREATE OR REPLACE FUNCTION chronicle.build_projection_indexes(p_run uuid, p_worker text, p_generation bigint)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  r chronicle.projection_runs;
  v_tables text[];
  v_index record;
  n integer := 0;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running' then
    raise exception 'projection run % is not running under this worker''s claim', p_run using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  for v_index in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute v_index.create_statement;
    n := n + 1;
  end loop;
  update chronicle.projection_runs x
     set phase = case when x.phase = 'indexing' then 'catching-up' else x.phase end, updated_at = now()
   where x.id = p_run;
  return n;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.finish_projection_rebuild(p_run uuid, p_worker text, p_generation bigint, p_lock_timeout_ms integer DEFAULT 100, p_table_wait_ms integer DEFAULT 0)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  r chronicle.projection_runs;
  e chronicle.events;
  n bigint := 0;
  v_inline boolean;
  v_next record;
  v_last_seq bigint;
  v_retired text := 'chronicle_retired_' || replace(p_run::text, '-', '');
  v_tables text[];
  v_views record;
  v_view_defs jsonb := '[]'::jsonb;
  v_policies jsonb := '[]'::jsonb;
  v_item jsonb;
  t text;
  v_old regclass;
  v_new regclass;
  g record;
  v_renames jsonb := '[]'::jsonb;
  v_identity "char";
  v_identity_index text;
  v_publications jsonb;
  -- Publications' column lists and row filters (pg_publication_rel.prattrs, prqual) exist from 15 on.
  v_publication_details boolean := current_setting('server_version_num')::integer >= 150000;
  v_refusal text;
  v_locked text;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running'
     or r.kind <> 'rebuild' then
    raise exception 'projection run % is not a running rebuild under this worker''s claim', p_run
      using errcode = '55000';
  end if;
  select bool_or(p.mode = 'inline'), array_agg(tb order by tb)
    into v_inline, v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  v_refusal := chronicle.projection_swap_refusal(v_tables);
  if v_refusal is not null then
    raise exception '%', v_refusal using errcode = '55000';
  end if;
  -- The engine built the indexes before (build_projection_indexes); should one still be
  -- missing, it is built here, before any lock is taken: no table is swapped in without all
  -- of its indexes.
  for g in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute g.create_statement;
  end loop;

  perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1) || 'ms', true);
  if v_inline then
    -- No append can be in flight after this, so every event is committed.
    lock table chronicle.events in share row exclusive mode;
  end if;
  -- The tables, and the views over them (recreated below), without waiting for their readers.
  select string_agg(x, ', ' order by x) into v_locked
    from (select format('chronicle.%I', tb) as x from unnest(v_tables) tb
          union
          select v.oid::regclass::text
            from pg_depend d
            join pg_rewrite rw on rw.oid = d.objid
            join pg_class v on v.oid = rw.ev_class
           where d.classid = 'pg_rewrite'::regclass and v.relkind = 'v' and v.oid <> d.refobjid
             and d.refobjid in (select format('chronicle.%I', tb)::regclass from unnest(v_tables) tb)) l;
  if coalesce(p_table_wait_ms, 0) <= 0 then
    execute format('lock table %s in access exclusive mode nowait', v_locked);
  else
    perform set_config('lock_timeout', p_table_wait_ms || 'ms', true);
    execute format('lock table %s in access exclusive mode', v_locked);
    perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1) || 'ms', true);
  end if;
  if v_inline then
    -- Sequencing every committed event here puts every event the live tables hold before the
    -- swap in the log's order.
    while chronicle.sequencer_pending() loop
      perform chronicle.sequence_events(null);
    end loop;
  end if;

  perform set_config('search_path', r.target_schema, true);
  v_last_seq := r.cursor_seq;
  for v_next in
    select ev as event, q.seq from chronicle.event_seq q
      join chronicle.events ev on ev.global_position = q.global_position
     where q.seq > coalesce(r.cursor_seq, 0)
     order by q.seq
  loop
    perform chronicle.project_selected(v_next.event, r.projections);
    n := n + 1;
    v_last_seq := v_next.seq;
  end loop;

  -- From here on every name is schema-qualified, and view definitions come out qualified.
  perform set_config('search_path', 'pg_catalog', true);

  for v_views in
    select distinct v.oid, v.reloptions
      from pg_depend d
      join pg_rewrite rw on rw.oid = d.objid
      join pg_class v on v.oid = rw.ev_class
     where d.classid = 'pg_rewrite'::regclass and v.relkind = 'v'
       and d.refobjid in (select format('chronicle.%I', x)::regclass from unnest(v_tables) x)
       and v.oid <> d.refobjid
     order by v.oid
  loop
    v_view_defs := v_view_defs || jsonb_build_object(
      'view', v_views.oid::regclass::text,
      'definition', pg_get_viewdef(v_views.oid),
      'options', coalesce(array_to_string(v_views.reloptions, ', '), ''));
  end loop;

  -- Policies on the swapped tables, and on every table whose policy reads one of them (a
  -- message's policy reads sessions), written out while their text still names chronicle's
  -- tables: a policy follows the table it reads into the retired schema, and goes with it.
  for g in
    select c.relname, pol.polname, pol.polpermissive,
           case pol.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                           when 'd' then 'delete' else 'all' end as cmd,
           (select string_agg(case when ro = 0 then 'public' else quote_ident(rl.rolname) end, ', ')
              from unnest(pol.polroles) ro left join pg_roles rl on rl.oid = ro) as roles,
           pg_get_expr(pol.polqual, pol.polrelid) as qual,
           pg_get_expr(pol.polwithcheck, pol.polrelid) as withcheck
      from pg_policy pol
      join pg_class c on c.oid = pol.polrelid
     where c.relnamespace = 'chronicle'::regnamespace
       and (c.relname = any (v_tables)
            or exists (select 1 from pg_depend d
                        where d.classid = 'pg_policy'::regclass and d.objid = pol.oid
                          and d.refobjid in (select format('chronicle.%I', x)::regclass from unnest(v_tables) x)))
     order by c.relname, pol.polname
  loop
    v_policies := v_policies || jsonb_build_object(
      'table', g.relname, 'name', g.polname,
      'create', format('create policy %I on chronicle.%I as %s for %s to %s%s%s', g.polname, g.relname,
                       case when g.polpermissive then 'permissive' else 'restrictive' end, g.cmd, g.roles,
                       case when g.qual is null then '' else ' using (' || g.qual || ')' end,
                       case when g.withcheck is null then '' else ' with check (' || g.withcheck || ')' end));
  end loop;

  execute format('create schema %I', v_retired);
  foreach t in array v_tables loop
    execute format('alter table chronicle.%I set schema %I', t, v_retired);
    execute format('alter table %I.%I set schema chronicle', r.target_schema, t);
    v_old := format('%I.%I', v_retired, t)::regclass;
    v_new := format('chronicle.%I', t)::regclass;

    -- Row-level security and the grants of the old table (its policies: below).
    if (select relrowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s enable row level security', v_new);
    end if;
    if (select relforcerowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s force row level security', v_new);
    end if;
    for g in
      select a.privilege_type, a.is_grantable,
             case when a.grantee = 0 then 'public' else quote_ident(rl.rolname) end as grantee
        from pg_class c
        cross join lateral aclexplode(c.relacl) a
        left join pg_roles rl on rl.oid = a.grantee
       where c.oid = v_old
    loop
      execute format('grant %s on %s to %s%s', g.privilege_type, v_new, g.grantee,
                     case when g.is_grantable then ' with grant option' else '' end);
    end loop;

    -- The new indexes take the old ones' names once those are gone.
    for g in
      select o.relname as old_name, ni.indexrelid::regclass::text as new_index
        from pg_index oi
        join pg_class o on o.oid = oi.indexrelid
        join pg_index ni on ni.indrelid = v_new
       where oi.indrelid = v_old
         and regexp_replace(pg_get_indexdef(oi.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
           = regexp_replace(pg_get_indexdef(ni.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
    loop
      v_renames := v_renames || jsonb_build_object('old', g.old_name, 'new', g.new_index);
    end loop;

    -- Replica identity (what logical decoding, so Supabase Realtime, sends of an updated or
    -- deleted row): the same setting; USING INDEX names the new copy of the old index, which
    -- takes the old one's name below. Set before the publications, whose row filters and
    -- column lists are checked against it.
    v_identity := (select relreplident from pg_class where oid = v_old);
    if v_identity = 'f' then
      execute format('alter table %s replica identity full', v_new);
    elsif v_identity = 'n' then
      execute format('alter table %s replica identity nothing', v_new);
    elsif v_identity = 'i' then
      select quote_ident(n.relname) into v_identity_index
        from pg_index oi
        join pg_index ni on ni.indrelid = v_new
        join pg_class n on n.oid = ni.indexrelid
       where oi.indrelid = v_old and oi.indisreplident
         and regexp_replace(pg_get_indexdef(oi.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
           = regexp_replace(pg_get_indexdef(ni.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1');
      execute format('alter table %s replica identity using index %s', v_new, v_identity_index);
    end if;

    -- The publications that list the old table (Supabase Realtime's supabase_realtime, a
    -- logical replication feed) list the new one, with the same column list and row filter.
    -- FOR ALL TABLES and FOR TABLES IN SCHEMA chronicle publications cover it already.
    if v_publication_details then
      select coalesce(jsonb_agg(jsonb_build_object(
               'publication', pub.pubname,
               'columns', (select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
                             from pg_attribute a where a.attrelid = pr.prrelid and a.attnum = any (pr.prattrs)),
               'filter', pg_get_expr(pr.prqual, pr.prrelid)) order by pub.pubname), '[]'::jsonb)
        into v_publications
        from pg_publication_rel pr join pg_publication pub on pub.oid = pr.prpubid
       where pr.prrelid = v_old;
    else
      select coalesce(jsonb_agg(jsonb_build_object('publication', pub.pubname) order by pub.pubname), '[]'::jsonb)
        into v_publications
        from pg_publication_rel pr join pg_publication pub on pub.oid = pr.prpubid
       where pr.prrelid = v_old;
    end if;
    for v_item in select * from jsonb_array_elements(v_publications) loop
      execute format('alter publication %I add table %s%s%s', v_item ->> 'publication', v_new,
                     case when v_item ->> 'columns' is null then '' else ' (' || (v_item ->> 'columns') || ')' end,
                     case when v_item ->> 'filter' is null then '' else ' where (' || (v_item ->> 'filter') || ')' end);
    end loop;
  end loop;

  -- Views over the swapped tables now point at the new ones.
  for v_item in select * from jsonb_array_elements(v_view_defs) loop
    execute format('create or replace view %s as %s', v_item ->> 'view', v_item ->> 'definition');
    if v_item ->> 'options' <> '' then
      execute format('alter view %s set (%s)', v_item ->> 'view', v_item ->> 'options');
    end if;
  end loop;

  execute format('drop schema %I cascade', v_retired);
  -- Every policy written out above, as it was, over the new tables.
  for v_item in select * from jsonb_array_elements(v_policies) loop
    execute format('drop policy if exists %I on chronicle.%I', v_item ->> 'name', v_item ->> 'table');
    execute v_item ->> 'create';
  end loop;
  for v_item in select * from jsonb_array_elements(v_renames) loop
    if split_part(v_item ->> 'new', '.', 2) <> v_item ->> 'old' then
      execute format('alter index %s rename to %I', v_item ->> 'new', v_item ->> 'old');
    end if;
  end loop;
  execute format('drop schema %I', r.target_schema);
  perform set_config('search_path', 'chronicle', true);

  update chronicle.projections p
     set built_version = p.version,
         state = 'live',
         last_error = null,
         cursor_seq = case when p.mode = 'async' then v_last_seq else p.cursor_seq end,
         updated_at = now()
   where p.name = any (r.projections);
  update chronicle.projection_runs x
     set state = 'completed',
         phase = 'done',
         cursor_seq = v_last_seq,
         events_done = x.events_done + n,
         events_total = x.events_done + n,
         finished_at = now(),
         heartbeat_at = now(),
         updated_at = now()
   where x.id = p_run;
  perform chronicle.refresh_projection_dispatch();
  return n;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.finish_projection_snapshot(p_run uuid, p_worker text, p_generation bigint)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  r chronicle.projection_runs;
  v_tables text[];
  v record;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running'
     or r.kind <> 'snapshot' then
    raise exception 'projection run % is not a running snapshot under this worker''s claim', p_run
      using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  -- The indexes its tables filled without, should the engine not have built them yet.
  for v in select * from chronicle.projection_missing_indexes(r.target_schema, v_tables) loop
    execute v.create_statement;
  end loop;
  -- Definitions come out with chronicle's tables unqualified, so they bind to the snapshot's.
  perform set_config('search_path', 'chronicle', true);
  for v in
    select c.oid, c.relname, c.reloptions, pg_get_viewdef(c.oid) as definition
      from pg_class c
     where c.relnamespace = 'chronicle'::regnamespace and c.relkind = 'v'
       and not exists (
         select 1
           from pg_depend d
           join pg_rewrite rw on rw.oid = d.objid
           join pg_class t on t.oid = d.refobjid
          where rw.ev_class = c.oid and d.classid = 'pg_rewrite'::regclass and t.oid <> c.oid
            and t.relkind in ('r', 'p', 'v') and t.relnamespace = 'chronicle'::regnamespace
            and t.relname <> all (v_tables))
       and exists (
         select 1 from pg_depend d join pg_rewrite rw on rw.oid = d.objid
          where rw.ev_class = c.oid and d.classid = 'pg_rewrite'::regclass and d.refobjid <> c.oid)
     order by c.oid
  loop
    perform set_config('search_path', r.target_schema, true);
    execute format('create view %I.%I as %s', r.target_schema, v.relname, v.definition);
    perform set_config('search_path', 'chronicle', true);
  end loop;
  update chronicle.projection_runs x
     set state = 'completed', phase = 'done', events_total = x.events_done, finished_at = now(),
         heartbeat_at = now(), updated_at = now()
   where x.id = p_run;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.prepare_projection_build(p_run uuid, p_worker text, p_generation bigint)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  r chronicle.projection_runs;
  v_source chronicle.projection_runs;
  t text;
  v_columns text;
  v_options text;
  v_refusal text;
  v_tables text[];
  v_index record;
begin
  select * into r from chronicle.projection_runs where id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation) or r.state <> 'running' then
    raise exception 'projection run % is not running under this worker''s claim', p_run using errcode = '55000';
  end if;
  select array_agg(tb) into v_tables
    from chronicle.projections p cross join lateral unnest(p.tables) tb
   where p.name = any (r.projections);
  if r.kind = 'rebuild' then
    -- Refused now rather than after the whole build, at the swap.
    v_refusal := chronicle.projection_swap_refusal(v_tables);
    if v_refusal is not null then
      raise exception '%', v_refusal using errcode = '55000';
    end if;
  end if;
  execute format('create schema if not exists %I', r.target_schema);
  foreach t in array v_tables loop
    if to_regclass(format('%I.%I', r.target_schema, t)) is null then
      execute format('create table %I.%I (like chronicle.%I including all)', r.target_schema, t, t);
      select array_to_string(c.reloptions, ', ') into v_options
        from pg_class c where c.oid = format('chronicle.%I', t)::regclass;
      if v_options is not null then
        execute format('alter table %I.%I set (%s)', r.target_schema, t, v_options);
      end if;
      -- The table fills without its secondary indexes (an index kept up row by row costs more
      -- than one built once over the whole table): chronicle.build_projection_indexes() builds
      -- them when the run has caught up. The primary key and the indexes of other constraints
      -- stay, for the handlers' lookups and conflicts.
      for v_index in
        select i.indexrelid::regclass::text as name
          from pg_index i
         where i.indrelid = format('%I.%I', r.target_schema, t)::regclass and not i.indisprimary
           and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
      loop
        execute format('drop index %s', v_index.name);
      end loop;
    end if;
  end loop;
  if r.source_run is not null and r.seeded_at is null then
    -- The engine refuses to drop a snapshot a rebuild has yet to copy; this only guards
    -- against a schema removed by hand.
    select * into v_source from chronicle.projection_runs x where x.id = r.source_run;
    if v_source.state is distinct from 'completed' then
      raise exception 'snapshot % that run % starts from is gone', coalesce(v_source.label, r.source_run::text), p_run
        using errcode = 'P0002';
    end if;
    foreach t in array v_tables loop
      select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
        into v_columns
        from pg_attribute a
       where a.attrelid = format('%I.%I', r.target_schema, t)::regclass and a.attnum > 0 and not a.attisdropped
         and a.attgenerated = '';
      execute format('insert into %I.%I (%s) select %s from %I.%I', r.target_schema, t, v_columns, v_columns,
                     v_source.target_schema, t);
    end loop;
    update chronicle.projection_runs x set seeded_at = now(), updated_at = now() where x.id = p_run;
  end if;
  -- A run resumed after its worker died while building the indexes catches up again first.
  update chronicle.projection_runs
     set phase = case phase when 'preparing' then 'copying' when 'indexing' then 'catching-up' else phase end,
         updated_at = now()
   where id = p_run;
end
$function$;

drop function chronicle.project_batch(chronicle.events[],text[]);

CREATE OR REPLACE FUNCTION chronicle.project_batch(p_names text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  -- The session events folded one by one, always: they create a session (from its parent's
  -- content, for a fork), or recompute it from its rows (a rollback, a purge).
  v_per_event constant text[] := array['SessionStarted', 'SessionForked', 'SessionRolledBack', 'SessionPurged'];
  v_fast_sessions boolean := 'sessions' = any (p_names) and chronicle.project_batch_setwise('sessions');
  v_fast_activity boolean := 'activity' = any (p_names) and chronicle.project_batch_setwise('activity');
  -- The projections folded one event at a time (all but the set-wise ones).
  v_rest text[] := array(
    select x from unnest(p_names) x
     where not ((x = 'sessions' and v_fast_sessions) or (x = 'activity' and v_fast_activity)));
  -- A session event that cannot be folded set-wise goes to every per-event projection and to sessions.
  v_with_sessions text[] := array_append(array(select x from unnest(v_rest) x where x <> 'sessions'), 'sessions');
  -- The stream categories the per-event projections care about ('*': every one).
  v_rest_categories text[] := array(
    select coalesce(c, '*') from chronicle.projections p
      left join lateral unnest(p.stream_categories) c on true
     where p.name = any (v_rest));
  v_any_category boolean;
  -- The types of the batch's events: a set-wise statement for a type it lacks is skipped.
  v_types text[] := array(select distinct b.type from pg_temp.chronicle_build_events b);
  v_next record;
begin
  v_any_category := '*' = any (v_rest_categories);
  -- Per session of the batch, the cut: the last version that must be folded one by one. Its
  -- events up to there go through the per-event handler, in order; those after it are folded
  -- set-wise afterwards. A session forked from in this batch goes wholly per event (the fork
  -- copies its content as of a version, so that content must be there first). live: whether
  -- the session has a row once the per-event events are folded (set below).
  create temp table if not exists chronicle_batch_sessions (
    session_id uuid primary key, cut integer not null, live boolean not null default false
  ) on commit drop;
  truncate pg_temp.chronicle_batch_sessions;
  if v_fast_sessions then
    insert into pg_temp.chronicle_batch_sessions (session_id, cut)
    select b.session_id, coalesce(max(b.stream_version) filter (where b.type = any (v_per_event)), 0)
      from pg_temp.chronicle_build_events b
     where b.session_id is not null
     group by 1;
    insert into pg_temp.chronicle_batch_sessions (session_id, cut)
    select distinct (b.data ->> 'parentId')::uuid, 2147483647
      from pg_temp.chronicle_build_events b
     where b.type = 'SessionForked' and b.session_id is not null
    on conflict (session_id) do update set cut = 2147483647;
  end if;

  -- In order, one event at a time: every projection but the set-wise ones, and sessions for
  -- the events up to their session's cut. Only these events are read back from the log.
  for v_next in
    select ev as event, (c.session_id is not null and b.stream_version <= c.cut) as with_sessions
      from pg_temp.chronicle_build_events b
      left join pg_temp.chronicle_batch_sessions c on c.session_id = b.session_id
      join chronicle.events ev on ev.global_position = b.global_position
     where (c.session_id is not null and b.stream_version <= c.cut)
        or v_any_category or b.category = any (v_rest_categories)
     order by b.seq
  loop
    perform chronicle.project_selected(v_next.event, case when v_next.with_sessions then v_with_sessions
                                                          else v_rest end);
  end loop;

  if v_fast_sessions then
    -- The events after the cut, of sessions that have a row (a stream that did not start with
    -- SessionStarted or SessionForked has none, and its events are ignored), as the handler
    -- chronicle.project_session folds them.
    update pg_temp.chronicle_batch_sessions c set live = true from sessions s where s.id = c.session_id;

    if 'MessageAppended' = any (v_types) then
      insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
      select b.session_id, (b.data ->> 'messageId')::uuid, b.stream_version, (b.data ->> 'seq')::integer,
             b.data ->> 'role', b.data ->> 'content', b.data -> 'metadata',
             coalesce((b.data ->> 'createdAt')::timestamptz, b.recorded_at)
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'MessageAppended' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'RevisionAdded' = any (v_types) then
      insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
      select b.session_id, (b.data ->> 'revisionId')::uuid, b.stream_version, (b.data ->> 'number')::integer,
             b.data -> 'ir', b.data ->> 'note', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'RevisionAdded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'DraftRecorded' = any (v_types) then
      insert into drafts (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
      select b.session_id, (b.data ->> 'draftId')::uuid, b.stream_version, b.data ->> 'code', b.data ->> 'language',
             (b.data ->> 'valid')::boolean, b.data -> 'metrics', (b.data ->> 'revisionNumber')::integer, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'DraftRecorded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'HoleResolved' = any (v_types) then
      insert into hole_resolutions (session_id, resolution_id, version, hole_id, value, confidence, created_at)
      select b.session_id, (b.data ->> 'resolutionId')::uuid, b.stream_version, b.data ->> 'holeId', b.data -> 'value',
             (b.data ->> 'confidence')::double precision, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'HoleResolved' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'ToolRunRecorded' = any (v_types) then
      insert into tool_runs (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
      select b.session_id, (b.data ->> 'toolRunId')::uuid, b.stream_version, b.data ->> 'tool', b.data -> 'input',
             b.data -> 'output', b.data ->> 'status', (b.data ->> 'durationMs')::bigint, b.data ->> 'error', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'ToolRunRecorded' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'SessionUpdated' = any (v_types) then
      insert into session_updates (session_id, version, title_set, title, metadata_set, metadata)
      select b.session_id, b.stream_version, b.data ? 'title', b.data ->> 'title', b.data ? 'metadata',
             b.data -> 'metadata'
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'SessionUpdated' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'FileAttached' = any (v_types) then
      insert into session_files (session_id, file_id, version, sha256, name, mime_type, size, attached_at)
      select b.session_id, (b.data ->> 'fileId')::uuid, b.stream_version, b.data ->> 'sha256', b.data ->> 'name',
             b.data ->> 'mimeType', (b.data ->> 'size')::bigint, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'FileAttached' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'FileDetached' = any (v_types) then
      insert into session_file_detachments (session_id, file_id, version, detached_at)
      select b.session_id, (b.data ->> 'fileId')::uuid, b.stream_version, b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'FileDetached' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;
    if 'CheckpointCreated' = any (v_types) then
      insert into checkpoints (id, session_id, version, event_version, label, cursor, created_at)
      select (b.data ->> 'checkpointId')::uuid, b.session_id, (b.data ->> 'version')::integer, b.stream_version,
             b.data ->> 'label', b.data ->> 'cursor', b.recorded_at
        from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
       where b.type = 'CheckpointCreated' and c.live and b.stream_version > c.cut
       order by b.session_id, b.stream_version;
    end if;

    -- Each session's row once: what the last event sets (version, head, times; title and
    -- metadata from the last update that set them, status from the last lifecycle event),
    -- the versions added to the effective set, and the counters moved by the events' sum.
    -- The head is the event's chronicle.event_cursor (its global position). A session's
    -- events in a batch are consecutive versions (the log's order keeps every stream in
    -- version order, and a batch is a run of that order), so they add one range to the
    -- effective set; the versions are gathered one by one only should they not be.
    update sessions s
       set version = a.last_version,
           effective = s.effective
                       + case when a.events = a.last_version - a.first_version + 1
                              then int4multirange(int4range(a.first_version, a.last_version + 1))
                              else (select range_agg(int4range(x.stream_version, x.stream_version + 1))
                                      from pg_temp.chronicle_build_events x
                                     where x.session_id = a.session_id and x.stream_version >= a.first_version) end,
           head_cursor = l.global_position::text,
           updated_at = l.recorded_at,
           last_activity_at = l.recorded_at,
           title = case when r.title_set then r.title else s.title end,
           metadata = case when r.metadata_set then r.metadata else s.metadata end,
           status = coalesce(r.status, s.status),
           archived_at = coalesce(r.archived_at, s.archived_at),
           deleted_at = coalesce(r.deleted_at, s.deleted_at),
           expired_at = case when r.expiry_set then r.expired_at else s.expired_at end,
           message_count = s.message_count + a.messages,
           revision_count = s.revision_count + a.revisions,
           draft_count = s.draft_count + a.drafts,
           hole_count = s.hole_count + a.holes,
           file_count = s.file_count + a.files,
           tool_run_count = s.tool_run_count + a.tool_runs
      from (
        select b.session_id,
               count(*) as events,
               min(b.stream_version) as first_version,
               max(b.stream_version) as last_version,
               (count(*) filter (where b.type = 'MessageAppended'))::integer as messages,
               (count(*) filter (where b.type = 'RevisionAdded'))::integer as revisions,
               (count(*) filter (where b.type = 'DraftRecorded'))::integer as drafts,
               (count(*) filter (where b.type = 'HoleResolved'))::integer as holes,
               (count(*) filter (where b.type = 'FileAttached')
                 - count(*) filter (where b.type = 'FileDetached'))::integer as files,
               (count(*) filter (where b.type = 'ToolRunRecorded'))::integer as tool_runs
          from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
         where c.live and b.stream_version > c.cut
         group by b.session_id) a
      join pg_temp.chronicle_build_events l on l.session_id = a.session_id and l.stream_version = a.last_version
      -- The few events that set the title, the metadata or the status.
      left join (
        select b.session_id,
               bool_or(true) filter (where b.type = 'SessionUpdated' and b.data ? 'title') as title_set,
               (array_agg(b.data ->> 'title' order by b.stream_version desc)
                  filter (where b.type = 'SessionUpdated' and b.data ? 'title'))[1] as title,
               bool_or(true) filter (where b.type = 'SessionUpdated' and b.data ? 'metadata') as metadata_set,
               (array_agg(b.data -> 'metadata' order by b.stream_version desc)
                  filter (where b.type = 'SessionUpdated' and b.data ? 'metadata'))[1] as metadata,
               (array_agg(case b.type when 'SessionArchived' then 'archived' when 'SessionDeleted' then 'deleted'
                                      when 'SessionExpired' then 'expired' else 'active' end
                          order by b.stream_version desc)
                  filter (where b.type <> 'SessionUpdated'))[1] as status,
               (array_agg(b.recorded_at order by b.stream_version desc)
                  filter (where b.type = 'SessionArchived'))[1] as archived_at,
               (array_agg(b.recorded_at order by b.stream_version desc)
                  filter (where b.type = 'SessionDeleted'))[1] as deleted_at,
               bool_or(true) filter (where b.type in ('SessionExpired', 'SessionReopened')) as expiry_set,
               (array_agg(case when b.type = 'SessionExpired' then b.recorded_at end order by b.stream_version desc)
                  filter (where b.type in ('SessionExpired', 'SessionReopened')))[1] as expired_at
          from pg_temp.chronicle_build_events b join pg_temp.chronicle_batch_sessions c using (session_id)
         where c.live and b.stream_version > c.cut
           and b.type in ('SessionUpdated', 'SessionArchived', 'SessionDeleted', 'SessionExpired', 'SessionReopened')
         group by b.session_id) r on r.session_id = a.session_id
     where s.id = a.session_id;
  end if;

  if v_fast_activity then
    insert into activity_streams (stream_id, owner_id, kind)
    select b.stream_id, (b.data ->> 'ownerId')::uuid, b.category
      from pg_temp.chronicle_build_events b
     where b.type in ('SessionStarted', 'SessionForked', 'JobCreated') and b.stream_version = 1
       and b.category in ('session', 'job')
    on conflict (stream_id) do nothing;

    insert into activity_daily as a
      (owner_id, day, sessions_started, messages, revisions, drafts, valid_drafts, tool_runs, jobs_created,
       jobs_completed, jobs_failed)
    select o.owner_id, (b.recorded_at at time zone 'UTC')::date,
           count(*) filter (where b.type in ('SessionStarted', 'SessionForked')),
           count(*) filter (where b.type = 'MessageAppended'),
           count(*) filter (where b.type = 'RevisionAdded'),
           count(*) filter (where b.type = 'DraftRecorded'),
           count(*) filter (where b.type = 'DraftRecorded' and (b.data ->> 'valid')::boolean),
           count(*) filter (where b.type = 'ToolRunRecorded'),
           count(*) filter (where b.type = 'JobCreated'),
           count(*) filter (where b.type = 'JobCompleted'),
           count(*) filter (where b.type = 'JobFailed')
      from pg_temp.chronicle_build_events b
      join activity_streams o on o.stream_id = b.stream_id
     where b.type in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
                      'ToolRunRecorded', 'JobCreated', 'JobCompleted', 'JobFailed')
     group by 1, 2
    on conflict (owner_id, day) do update
       set sessions_started = a.sessions_started + excluded.sessions_started,
           messages = a.messages + excluded.messages,
           revisions = a.revisions + excluded.revisions,
           drafts = a.drafts + excluded.drafts,
           valid_drafts = a.valid_drafts + excluded.valid_drafts,
           tool_runs = a.tool_runs + excluded.tool_runs,
           jobs_created = a.jobs_created + excluded.jobs_created,
           jobs_completed = a.jobs_completed + excluded.jobs_completed,
           jobs_failed = a.jobs_failed + excluded.jobs_failed;

    if 'DraftRecorded' = any (v_types) then
      insert into activity_daily_drafts as a (owner_id, day, language, drafts, valid_drafts)
      select o.owner_id, (b.recorded_at at time zone 'UTC')::date, b.data ->> 'language', count(*),
             count(*) filter (where (b.data ->> 'valid')::boolean)
        from pg_temp.chronicle_build_events b
        join activity_streams o on o.stream_id = b.stream_id
       where b.type = 'DraftRecorded'
       group by 1, 2, 3
      on conflict (owner_id, day, language) do update
         set drafts = a.drafts + excluded.drafts, valid_drafts = a.valid_drafts + excluded.valid_drafts;
    end if;
  end if;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_build_batch(p_run uuid, p_worker text, p_generation bigint, p_limit integer)
 RETURNS TABLE(applied integer, caught_up boolean, state text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'chronicle', 'pg_temp'
AS $function$
declare
  r chronicle.projection_runs;
  n integer;
  v_last_seq bigint;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found then
    raise exception 'no projection run %', p_run using errcode = 'P0002';
  end if;
  if not chronicle.projection_run_held(r, p_worker, p_generation) then
    return query select 0, true, 'taken'::text;
    return;
  end if;
  if r.state <> 'running' then
    return query select 0, true, r.state;
    return;
  end if;
  -- A batch's statements are planned afresh each time over temporary tables the planner knows
  -- little about: compiling them (JIT) would take longer than running them.
  perform set_config('jit', 'off', true);
  -- The batch, read from the log once into a temporary table that chronicle.project_batch
  -- reads (set-wise, and for the events it folds one by one).
  create temp table if not exists chronicle_build_events (
    seq bigint not null, global_position bigint not null, stream_id text not null, category text not null,
    session_id uuid, stream_version integer not null, type text not null, data jsonb not null,
    recorded_at timestamptz not null
  ) on commit drop;
  truncate pg_temp.chronicle_build_events;
  insert into pg_temp.chronicle_build_events
    (seq, global_position, stream_id, category, session_id, stream_version, type, data, recorded_at)
  select q.seq, ev.global_position, ev.stream_id, split_part(ev.stream_id, '-', 1),
         case when split_part(ev.stream_id, '-', 1) = 'session' then chronicle.stream_uuid(ev.stream_id) end,
         ev.stream_version, ev.type, ev.data, ev.recorded_at
    from (select q.seq, q.global_position from chronicle.event_seq q
           where q.seq > coalesce(r.cursor_seq, 0) and (r.bound_seq is null or q.seq <= r.bound_seq)
           order by q.seq
           limit p_limit) q
    join chronicle.events ev on ev.global_position = q.global_position
   order by q.seq;
  get diagnostics n = row_count;
  if n > 0 then
    select max(b.seq) into v_last_seq from pg_temp.chronicle_build_events b;
    perform set_config('search_path', r.target_schema, true);
    perform chronicle.project_batch(r.projections);
    perform set_config('search_path', 'chronicle', true);
  end if;
  update chronicle.projection_runs x
     set cursor_seq = coalesce(v_last_seq, x.cursor_seq),
         events_done = x.events_done + n,
         events_total = greatest(x.events_total, x.events_done + n),
         phase = case when n < p_limit and x.phase = 'copying' then 'catching-up' else x.phase end,
         heartbeat_at = now(),
         updated_at = now()
   where x.id = p_run;
  return query select n, n < p_limit, 'running'::text;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_missing_indexes(p_schema text, p_tables text[])
 RETURNS TABLE(table_name text, index_name text, create_statement text)
 LANGUAGE sql
 STABLE
AS $function$
  select c.relname::text, i.relname::text,
         format('create %sindex %I on %I.%I %s', case when li.indisunique then 'unique ' else '' end,
                i.relname, p_schema, c.relname,
                regexp_replace(pg_get_indexdef(li.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', ''))
    from pg_index li
    join pg_class c on c.oid = li.indrelid
    join pg_class i on i.oid = li.indexrelid
   where c.relnamespace = 'chronicle'::regnamespace and c.relname = any (p_tables)
     and not exists (
       select 1
         from pg_index si
        where si.indrelid = to_regclass(format('%I.%I', p_schema, c.relname))
          and regexp_replace(pg_get_indexdef(si.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
            = regexp_replace(pg_get_indexdef(li.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1'))
   order by c.relname, i.relname
$function$;

select chronicle.apply_runtime_privileges();
