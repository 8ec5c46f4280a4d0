-- Chronicle: a rebuild may start from a completed snapshot.
--
-- A rebuild from the log replays every event. A snapshot (analytics_asof_<label>) already
-- holds the projections as of its bound, the last event it includes; a rebuild seeded from it
-- copies those tables into its shadow schema, starts its cursor at the bound, and only replays
-- what came after. The copy is made in the same transaction as the shadow tables and is
-- recorded there (seeded_at), so a resumed run never copies twice, and the cursor set when
-- the run starts means no event is applied twice.
--
-- A snapshot is only a valid seed if it was built by the definitions that are registered now:
-- snapshots record the version of each projection they were built with (`versions`). Those
-- made before this migration have none, and the engine refuses them as seeds.

alter table chronicle.projection_runs
  -- Snapshots: {"<projection>": <version>} of the definitions they were built with.
  add column versions jsonb,
  -- Rebuilds from a snapshot: the snapshot's run, the events its tables already hold, and
  -- when they were copied into the shadow schema (null until then).
  add column source_run uuid,
  add column events_seeded bigint not null default 0,
  add column seeded_at timestamptz;

-- The tables among p_tables whose columns (names and types, in order) in p_schema are not
-- those of the live table in chronicle, or that p_schema lacks: a snapshot whose tables no
-- longer match the live definitions cannot seed a rebuild.
create function chronicle.projection_tables_mismatch(p_schema text, p_tables text[]) returns text[]
language sql stable as $$
  select coalesce(array_agg(t order by t), '{}')
    from unnest(p_tables) t
   where to_regclass(format('%I.%I', p_schema, t)) is null
      or (select array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
            from pg_attribute a
           where a.attrelid = format('%I.%I', p_schema, t)::regclass and a.attnum > 0 and not a.attisdropped)
         is distinct from
         (select array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
            from pg_attribute a
           where a.attrelid = format('chronicle.%I', t)::regclass and a.attnum > 0 and not a.attisdropped)
$$;

-- Creates the run's schema and, in it, an empty copy of every table of its projections; for a
-- rebuild from a snapshot, fills them with the snapshot's rows, once. One transaction, and
-- idempotent, so a resumed run can call it again.
create or replace function chronicle.prepare_projection_build(p_run uuid) returns void
language plpgsql as $$
declare
  r chronicle.projection_runs;
  v_source chronicle.projection_runs;
  t text;
  v_columns text;
begin
  select * into r from chronicle.projection_runs where id = p_run for update;
  execute format('create schema if not exists %I', r.target_schema);
  for t in select unnest(p.tables) from chronicle.projections p where p.name = any (r.projections) loop
    if to_regclass(format('%I.%I', r.target_schema, t)) is null then
      execute format('create table %I.%I (like chronicle.%I including all)', r.target_schema, t, t);
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
    for t in select unnest(p.tables) from chronicle.projections p where p.name = any (r.projections) loop
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
$$;
