-- rebuild_keeps_policies: the swap writes out every policy on the swapped tables, and every policy that reads one of them, before it moves anything, and re-creates them over the new tables (a rebuild dropped 15 of the 53 policies of a Supabase database: those reading a swapped table went with the retired copy).

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

-- The swap's refusal names a materialized view with its schema whatever the caller's search_path.

CREATE OR REPLACE FUNCTION chronicle.projection_swap_refusal(p_tables text[])
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  select format('%s reads %s: a rebuild cannot swap a table a materialized view depends on; drop the '
                'materialized view (or make it a view) and the rebuild is retried',
                string_agg(distinct format('materialized view %I.%I', vn.nspname, v.relname), ', '),
                string_agg(distinct 'chronicle.' || t.relname, ', '))
    from pg_depend d
    join pg_rewrite rw on rw.oid = d.objid
    join pg_class v on v.oid = rw.ev_class
    join pg_namespace vn on vn.oid = v.relnamespace
    join pg_class t on t.oid = d.refobjid
   where d.classid = 'pg_rewrite'::regclass and v.relkind = 'm' and v.oid <> d.refobjid
     and t.relnamespace = 'chronicle'::regnamespace and t.relname = any (p_tables)
  having count(*) > 0
$function$;
