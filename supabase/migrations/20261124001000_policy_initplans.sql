-- Chronicle: row-level security that evaluates auth.uid() once per statement, and the owner
-- index the activity projection lacked.
--
-- A policy written `owner_id = auth.uid()` calls the function for every row it checks;
-- `owner_id = (select auth.uid())` is planned as an init plan, evaluated once per statement,
-- which is what Supabase recommends for tables of any size. Every policy on Chronicle's tables
-- that calls auth.uid() directly is re-created in that form (same name, command, roles and
-- meaning). Policies created later by the projection engine's swaps are copied from these.

do $$
declare
  p record;
  v_roles text;
begin
  for p in
    select pol.polname, c.oid::regclass::text as tbl, pol.polpermissive,
           case pol.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                           when 'd' then 'delete' else 'all' end as cmd,
           pol.polroles,
           pg_get_expr(pol.polqual, pol.polrelid) as qual,
           pg_get_expr(pol.polwithcheck, pol.polrelid) as withcheck
      from pg_policy pol
      join pg_class c on c.oid = pol.polrelid
     where c.relnamespace = 'chronicle'::regnamespace
       and (pg_get_expr(pol.polqual, pol.polrelid) ~ '(?<!SELECT )auth\.uid\(\)'
            or coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '') ~ '(?<!SELECT )auth\.uid\(\)')
  loop
    select string_agg(case when ro = 0 then 'public' else quote_ident(rl.rolname) end, ', ')
      into v_roles
      from unnest(p.polroles) ro left join pg_roles rl on rl.oid = ro;
    execute format('drop policy %I on %s', p.polname, p.tbl);
    execute format('create policy %I on %s as %s for %s to %s%s%s', p.polname, p.tbl,
                   case when p.polpermissive then 'permissive' else 'restrictive' end, p.cmd, v_roles,
                   case when p.qual is null then ''
                        else ' using (' || regexp_replace(p.qual, '(?<!SELECT )auth\.uid\(\)', '(select auth.uid())', 'g') || ')' end,
                   case when p.withcheck is null then ''
                        else ' with check (' || regexp_replace(p.withcheck, '(?<!SELECT )auth\.uid\(\)', '(select auth.uid())', 'g') || ')' end);
  end loop;
end
$$;

create index activity_streams_owner_idx on chronicle.activity_streams (owner_id);
