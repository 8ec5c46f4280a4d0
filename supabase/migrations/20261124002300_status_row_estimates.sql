-- Chronicle: projections.status reports large tables' row counts from the planner's statistics.
--
-- Status gives every read-model table's row count. An exact count(*) reads the whole table:
-- a few milliseconds for small tables, seconds for a table of millions, and the Studio polls
-- status. A table that pg_class.reltuples (kept by autovacuum and ANALYZE) puts at
-- p_exact_below rows or more is reported from those statistics and marked estimated; smaller
-- ones, and tables never analyzed (reltuples -1), are counted exactly.

drop function chronicle.projection_table_rows(text[]);

create function chronicle.projection_table_rows(p_tables text[], p_exact_below bigint default 100000)
returns table (name text, rows bigint, estimated boolean)
language plpgsql stable as $$
declare
  t text;
  v_rel regclass;
  v_tuples real;
begin
  foreach t in array p_tables loop
    name := t;
    rows := null;
    estimated := false;
    v_rel := to_regclass(format('chronicle.%I', t));
    if v_rel is not null then
      select c.reltuples into v_tuples from pg_class c where c.oid = v_rel;
      if v_tuples >= p_exact_below then
        rows := round(v_tuples)::bigint;
        estimated := true;
      else
        execute format('select count(*) from %s', v_rel) into rows;
      end if;
    end if;
    return next;
  end loop;
end
$$;
