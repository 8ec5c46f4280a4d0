-- engine_faults: the projection engine under faults. Runs carry a fencing token (generation)
-- that every write checks; the swap takes the log's lock with a short timeout and the tables
-- with NOWAIT; failed runs record their error, drop their schema and are retried with back-off;
-- the set-wise batch path serves only the handler versions it was written for; shadow tables
-- keep the live tables' storage parameters.

alter table chronicle.projection_runs add column generation bigint not null default 0;
alter table chronicle.projection_runs add column swap_attempts integer not null default 0;

-- Snapshots' as-of selectors were stored as JSON strings holding the JSON text: store the object.
update chronicle.projection_runs set as_of = (as_of #>> '{}')::jsonb where jsonb_typeof(as_of) = 'string';

-- Failed runs used to leave their schema behind: drop those no other run uses (a snapshot's
-- schema is named by its label, which a later snapshot may have taken again).
do $$
declare
  v_schema text;
begin
  for v_schema in
    select distinct f.target_schema
      from chronicle.projection_runs f
     where f.state = 'failed'
       and not exists (select 1 from chronicle.projection_runs o
                        where o.target_schema = f.target_schema and o.state in ('running', 'cancelling', 'completed'))
       and to_regnamespace(f.target_schema) is not null
  loop
    execute format('drop schema %I cascade', v_schema);
  end loop;
end
$$;

CREATE OR REPLACE FUNCTION chronicle.fail_projection_run(p_run uuid, p_worker text, p_generation bigint, p_error text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  r chronicle.projection_runs;
begin
  select * into r from chronicle.projection_runs x where x.id = p_run for update;
  if not found or not chronicle.projection_run_held(r, p_worker, p_generation)
     or r.state not in ('running', 'cancelling') then
    return false;
  end if;
  execute format('drop schema if exists %I cascade', r.target_schema);
  update chronicle.projection_runs x
     set state = 'failed', error = p_error, finished_at = now(), updated_at = now()
   where x.id = p_run;
  if r.kind = 'rebuild' then
    update chronicle.projections p
       set state = case when p.built_version = p.version then 'live' else 'failed' end,
           last_error = case when p.built_version = p.version then p.last_error
                             else format('rebuild to v%s failed (run %s): %s', p.version, p_run, p_error) end,
           updated_at = now()
     where p.name = any (r.projections);
  end if;
  return true;
end
$function$;

drop function chronicle.finish_projection_rebuild(uuid,text);

CREATE OR REPLACE FUNCTION chronicle.finish_projection_rebuild(p_run uuid, p_worker text, p_generation bigint, p_lock_timeout_ms integer DEFAULT 100, p_table_wait_ms integer DEFAULT 0)
 RETURNS bigint
 LANGUAGE plpgsql
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

  execute format('create schema %I', v_retired);
  foreach t in array v_tables loop
    execute format('alter table chronicle.%I set schema %I', t, v_retired);
    execute format('alter table %I.%I set schema chronicle', r.target_schema, t);
    v_old := format('%I.%I', v_retired, t)::regclass;
    v_new := format('chronicle.%I', t)::regclass;

    -- Row-level security, its policies, and the grants of the old table.
    if (select relrowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s enable row level security', v_new);
    end if;
    if (select relforcerowsecurity from pg_class where oid = v_old) then
      execute format('alter table %s force row level security', v_new);
    end if;
    for g in
      select pol.polname, pol.polpermissive,
             case pol.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                             when 'd' then 'delete' else 'all' end as cmd,
             (select string_agg(case when ro = 0 then 'public' else quote_ident(rl.rolname) end, ', ')
                from unnest(pol.polroles) ro left join pg_roles rl on rl.oid = ro) as roles,
             pg_get_expr(pol.polqual, pol.polrelid) as qual,
             pg_get_expr(pol.polwithcheck, pol.polrelid) as withcheck
        from pg_policy pol
       where pol.polrelid = v_old
    loop
      execute format('create policy %I on %s as %s for %s to %s%s%s', g.polname, v_new,
                     case when g.polpermissive then 'permissive' else 'restrictive' end, g.cmd, g.roles,
                     case when g.qual is null then '' else ' using (' || g.qual || ')' end,
                     case when g.withcheck is null then '' else ' with check (' || g.withcheck || ')' end);
    end loop;
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

drop function chronicle.finish_projection_snapshot(uuid,text);

CREATE OR REPLACE FUNCTION chronicle.finish_projection_snapshot(p_run uuid, p_worker text, p_generation bigint)
 RETURNS void
 LANGUAGE plpgsql
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

drop function chronicle.prepare_projection_build(uuid);

CREATE OR REPLACE FUNCTION chronicle.prepare_projection_build(p_run uuid, p_worker text, p_generation bigint)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  r chronicle.projection_runs;
  v_source chronicle.projection_runs;
  t text;
  v_columns text;
  v_options text;
  v_refusal text;
  v_tables text[];
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
  update chronicle.projection_runs
     set phase = case when phase = 'preparing' then 'copying' else phase end, updated_at = now()
   where id = p_run;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_batch(p_batch chronicle.events[], p_names text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_simple constant text[] := array['MessageAppended', 'RevisionAdded', 'DraftRecorded', 'HoleResolved',
                                    'ToolRunRecorded'];
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
  e chronicle.events;
  v_cut integer;
begin
  v_any_category := '*' = any (v_rest_categories);
  if v_fast_sessions then
    -- Per session, the last version in this batch that is not plain content: its events up to
    -- there go through the per-event handler, in order; the plain content after it is folded
    -- set-wise afterwards. A session forked from in this batch goes wholly per event (the fork
    -- copies its content as of a version, so that content must be there first).
    create temp table if not exists chronicle_batch_cut (session_id uuid primary key, cut integer not null)
      on commit drop;
    truncate chronicle_batch_cut;
    insert into chronicle_batch_cut
    select chronicle.stream_uuid(x.stream_id), max(x.stream_version)
      from unnest(p_batch) x
     where split_part(x.stream_id, '-', 1) = 'session' and x.type <> all (v_simple)
     group by 1
    on conflict (session_id) do nothing;
    insert into chronicle_batch_cut
    select distinct (x.data ->> 'parentId')::uuid, 2147483647
      from unnest(p_batch) x
     where x.type = 'SessionForked' and split_part(x.stream_id, '-', 1) = 'session'
    on conflict (session_id) do update set cut = 2147483647;
  end if;

  -- In order, one event at a time: every projection but the set-wise ones.
  foreach e in array p_batch loop
    if v_fast_sessions and split_part(e.stream_id, '-', 1) = 'session' then
      select c.cut into v_cut from chronicle_batch_cut c where c.session_id = chronicle.stream_uuid(e.stream_id);
      if e.type <> all (v_simple) or e.stream_version <= coalesce(v_cut, 0) then
        perform chronicle.project_selected(e, v_with_sessions);
        continue;
      end if;
    end if;
    if v_any_category or split_part(e.stream_id, '-', 1) = any (v_rest_categories) then
      perform chronicle.project_selected(e, v_rest);
    end if;
  end loop;

  if v_fast_sessions then
    create temp table if not exists chronicle_fast_batch (
      session_id uuid, version integer, type text, data jsonb, recorded_at timestamptz, cursor text
    ) on commit drop;
    truncate chronicle_fast_batch;
    insert into chronicle_fast_batch
    select s.id, x.stream_version, x.type, x.data, x.recorded_at, chronicle.event_cursor(x)
      from unnest(p_batch) x
      join sessions s on s.id = chronicle.stream_uuid(x.stream_id)
      left join chronicle_batch_cut c on c.session_id = s.id
     where split_part(x.stream_id, '-', 1) = 'session' and x.type = any (v_simple)
       and x.stream_version > coalesce(c.cut, 0);

    insert into messages (session_id, message_id, version, seq, role, content, metadata, created_at)
    select b.session_id, (b.data ->> 'messageId')::uuid, b.version, (b.data ->> 'seq')::integer, b.data ->> 'role',
           b.data ->> 'content', b.data -> 'metadata', coalesce((b.data ->> 'createdAt')::timestamptz, b.recorded_at)
      from chronicle_fast_batch b where b.type = 'MessageAppended' order by b.session_id, b.version;
    insert into revisions (session_id, revision_id, version, number, ir, note, created_at)
    select b.session_id, (b.data ->> 'revisionId')::uuid, b.version, (b.data ->> 'number')::integer, b.data -> 'ir',
           b.data ->> 'note', b.recorded_at
      from chronicle_fast_batch b where b.type = 'RevisionAdded' order by b.session_id, b.version;
    insert into drafts (session_id, draft_id, version, code, language, valid, metrics, revision_number, created_at)
    select b.session_id, (b.data ->> 'draftId')::uuid, b.version, b.data ->> 'code', b.data ->> 'language',
           (b.data ->> 'valid')::boolean, b.data -> 'metrics', (b.data ->> 'revisionNumber')::integer, b.recorded_at
      from chronicle_fast_batch b where b.type = 'DraftRecorded' order by b.session_id, b.version;
    insert into hole_resolutions (session_id, resolution_id, version, hole_id, value, confidence, created_at)
    select b.session_id, (b.data ->> 'resolutionId')::uuid, b.version, b.data ->> 'holeId', b.data -> 'value',
           (b.data ->> 'confidence')::double precision, b.recorded_at
      from chronicle_fast_batch b where b.type = 'HoleResolved' order by b.session_id, b.version;
    insert into tool_runs (session_id, tool_run_id, version, tool, input, output, status, duration_ms, error, created_at)
    select b.session_id, (b.data ->> 'toolRunId')::uuid, b.version, b.data ->> 'tool', b.data -> 'input',
           b.data -> 'output', b.data ->> 'status', (b.data ->> 'durationMs')::bigint, b.data ->> 'error', b.recorded_at
      from chronicle_fast_batch b where b.type = 'ToolRunRecorded' order by b.session_id, b.version;

    update sessions s
       set version = a.last_version,
           effective = s.effective + a.versions,
           head_cursor = a.last_cursor,
           updated_at = a.last_at,
           last_activity_at = a.last_at,
           message_count = s.message_count + a.messages,
           revision_count = s.revision_count + a.revisions,
           draft_count = s.draft_count + a.drafts,
           hole_count = s.hole_count + a.holes,
           tool_run_count = s.tool_run_count + a.tool_runs
      from (
        select b.session_id,
               max(b.version) as last_version,
               range_agg(int4range(b.version, b.version + 1)) as versions,
               (array_agg(b.cursor order by b.version desc))[1] as last_cursor,
               (array_agg(b.recorded_at order by b.version desc))[1] as last_at,
               (count(*) filter (where b.type = 'MessageAppended'))::integer as messages,
               (count(*) filter (where b.type = 'RevisionAdded'))::integer as revisions,
               (count(*) filter (where b.type = 'DraftRecorded'))::integer as drafts,
               (count(*) filter (where b.type = 'HoleResolved'))::integer as holes,
               (count(*) filter (where b.type = 'ToolRunRecorded'))::integer as tool_runs
          from chronicle_fast_batch b
         group by b.session_id) a
     where s.id = a.session_id;
  end if;

  if v_fast_activity then
    insert into activity_streams (stream_id, owner_id, kind)
    select x.stream_id, (x.data ->> 'ownerId')::uuid, split_part(x.stream_id, '-', 1)
      from unnest(p_batch) x
     where x.type in ('SessionStarted', 'SessionForked', 'JobCreated') and x.stream_version = 1
       and split_part(x.stream_id, '-', 1) in ('session', 'job')
    on conflict (stream_id) do nothing;

    insert into activity_daily as a
      (owner_id, day, sessions_started, messages, revisions, drafts, valid_drafts, tool_runs, jobs_created,
       jobs_completed, jobs_failed)
    select o.owner_id, (x.recorded_at at time zone 'UTC')::date,
           count(*) filter (where x.type in ('SessionStarted', 'SessionForked')),
           count(*) filter (where x.type = 'MessageAppended'),
           count(*) filter (where x.type = 'RevisionAdded'),
           count(*) filter (where x.type = 'DraftRecorded'),
           count(*) filter (where x.type = 'DraftRecorded' and (x.data ->> 'valid')::boolean),
           count(*) filter (where x.type = 'ToolRunRecorded'),
           count(*) filter (where x.type = 'JobCreated'),
           count(*) filter (where x.type = 'JobCompleted'),
           count(*) filter (where x.type = 'JobFailed')
      from unnest(p_batch) x
      join activity_streams o on o.stream_id = x.stream_id
     where x.type in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
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

    insert into activity_daily_drafts as a (owner_id, day, language, drafts, valid_drafts)
    select o.owner_id, (x.recorded_at at time zone 'UTC')::date, x.data ->> 'language', count(*),
           count(*) filter (where (x.data ->> 'valid')::boolean)
      from unnest(p_batch) x
      join activity_streams o on o.stream_id = x.stream_id
     where x.type = 'DraftRecorded'
     group by 1, 2, 3
    on conflict (owner_id, day, language) do update
       set drafts = a.drafts + excluded.drafts, valid_drafts = a.valid_drafts + excluded.valid_drafts;
  end if;

end
$function$;

CREATE OR REPLACE FUNCTION chronicle.project_batch_setwise(p_name text)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select exists (
    select 1
      from chronicle.projections p
      join (values ('sessions', 'chronicle.project_session', 1),
                   ('activity', 'chronicle.project_activity', 1)) w (name, handler, version)
        on w.name = p.name and w.handler = p.handler and w.version = p.version
     where p.name = p_name)
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_async_batch(p_name text, p_worker text, p_limit integer, p_lease_seconds integer)
 RETURNS TABLE(applied integer, held boolean, caught_up boolean)
 LANGUAGE plpgsql
AS $function$
declare
  p chronicle.projections;
  e chronicle.events;
  n integer := 0;
  v_next record;
  v_last_seq bigint;
  v_last_at timestamptz;
  v_started timestamptz := clock_timestamp();
begin
  select * into p from chronicle.projections x where x.name = p_name for update;
  if not found or p.mode <> 'async' then
    raise exception 'no async projection %', p_name using errcode = 'P0002';
  end if;
  if p.lease_owner is distinct from p_worker and p.lease_expires_at > now() then
    return query select 0, false, false;
    return;
  end if;
  update chronicle.projections x
     set lease_owner = p_worker, lease_expires_at = now() + make_interval(secs => p_lease_seconds)
   where x.name = p_name;
  if p.built_version is null or p.state = 'backfilling' then
    -- Not built yet: a rebuild run owns it.
    return query select 0, true, true;
    return;
  end if;
  perform set_config('search_path', 'chronicle', true);
  for v_next in
    select ev as event, q.seq
      from (select * from chronicle.event_seq q0 where q0.seq > coalesce(p.cursor_seq, 0) order by q0.seq limit p_limit) q
      join chronicle.events ev on ev.global_position = q.global_position
     order by q.seq
  loop
    perform chronicle.project_selected(v_next.event, array[p_name]);
    n := n + 1;
    v_last_seq := v_next.seq;
    v_last_at := (v_next.event).recorded_at;
  end loop;
  -- A batch that went through clears a failure of the daemon's; not a failed or pending rebuild
  -- (built_version behind version), which the rebuild's outcome reports.
  if n > 0 then
    update chronicle.projections x
       set cursor_seq = v_last_seq,
           events_applied = x.events_applied + n,
           last_event_at = v_last_at,
           last_applied_at = now(),
           events_per_second = n / greatest(extract(epoch from clock_timestamp() - v_started), 0.000001),
           state = case when x.built_version = x.version then 'live' else x.state end,
           last_error = case when x.built_version = x.version then null else x.last_error end,
           updated_at = now()
     where x.name = p_name;
  elsif p.state = 'failed' and p.built_version = p.version then
    update chronicle.projections x set state = 'live', last_error = null, updated_at = now() where x.name = p_name;
  end if;
  return query select n, true, n < p_limit;
end
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_build_batch(p_run uuid, p_worker text, p_generation bigint, p_limit integer)
 RETURNS TABLE(applied integer, caught_up boolean, state text)
 LANGUAGE plpgsql
AS $function$
declare
  r chronicle.projection_runs;
  v_batch chronicle.events[];
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
  select array_agg(ev order by q.seq), max(q.seq)
    into v_batch, v_last_seq
    from (select q.seq, q.global_position from chronicle.event_seq q
           where q.seq > coalesce(r.cursor_seq, 0) and (r.bound_seq is null or q.seq <= r.bound_seq)
           order by q.seq
           limit p_limit) q
    join chronicle.events ev on ev.global_position = q.global_position;
  v_batch := coalesce(v_batch, '{}');
  n := cardinality(v_batch);
  if n > 0 then
    perform set_config('search_path', r.target_schema, true);
    perform chronicle.project_batch(v_batch, r.projections);
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

drop function chronicle.projection_build_batch(uuid,text,integer);

CREATE OR REPLACE FUNCTION chronicle.projection_retry_at(p_name text, p_base_seconds double precision DEFAULT 10, p_cap_seconds double precision DEFAULT 600)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
  with mine as (
    select r.state, r.started_at, r.finished_at
      from chronicle.projection_runs r
     where r.kind = 'rebuild' and p_name = any (r.projections)),
  failures as (
    select count(*) as n, max(m.finished_at) as last_at
      from mine m
     where m.state = 'failed'
       and m.started_at > coalesce((select max(c.started_at) from mine c where c.state = 'completed'), '-infinity'))
  select f.last_at + make_interval(secs => least(p_base_seconds * power(2, f.n - 1), p_cap_seconds))
    from failures f
   where f.n > 0
     and (select m.state from mine m order by m.started_at desc limit 1) = 'failed'
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_run_held(r chronicle.projection_runs, p_worker text, p_generation bigint)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select r.worker is not distinct from p_worker and r.generation = p_generation
$function$;

CREATE OR REPLACE FUNCTION chronicle.projection_swap_refusal(p_tables text[])
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  select format('%s reads %s: a rebuild cannot swap a table a materialized view depends on; drop the '
                'materialized view (or make it a view) and the rebuild is retried',
                string_agg(distinct 'materialized view ' || v.oid::regclass::text, ', '),
                string_agg(distinct 'chronicle.' || t.relname, ', '))
    from pg_depend d
    join pg_rewrite rw on rw.oid = d.objid
    join pg_class v on v.oid = rw.ev_class
    join pg_class t on t.oid = d.refobjid
   where d.classid = 'pg_rewrite'::regclass and v.relkind = 'm' and v.oid <> d.refobjid
     and t.relnamespace = 'chronicle'::regnamespace and t.relname = any (p_tables)
  having count(*) > 0
$function$;
