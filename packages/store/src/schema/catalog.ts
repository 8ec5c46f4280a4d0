/**
 * What a database holds in Chronicle's schema, read from the system catalog as one line of
 * text per object: tables with their columns, constraints and settings, indexes, views,
 * functions (with their whole definition), triggers, policies, grants, comments, and the
 * rows of the projection registry. Two databases built two ways (the schema files, the
 * migrations) are the same database exactly when their descriptions are equal.
 */
import { Effect } from "effect"
import { Database } from "../database.ts"

/** Object key (`function chronicle.f(uuid)`) → its definition as text. */
export type Catalog = ReadonlyMap<string, string>

const rows = <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.flatMap(Database, (db) => db.query<Row>(text, params))

/** Reads the catalog of `schema` (default `chronicle`) in the connected database. */
export const describeCatalog = (schema = "chronicle") =>
  Effect.gen(function* () {
    const entries: Array<[string, string]> = []
    const add = (key: string, value: unknown) =>
      entries.push([key, typeof value === "string" ? value : JSON.stringify(value)])

    const [namespace] = yield* rows<{ acl: string | null; comment: string | null }>(
      `select n.nspacl::text as acl, obj_description(n.oid, 'pg_namespace') as comment
         from pg_namespace n where n.nspname = $1`,
      [schema],
    )
    if (namespace === undefined) return new Map<string, string>() as Catalog
    add(`schema ${schema}`, namespace)

    const relations = yield* rows<{
      name: string
      kind: string
      rls: boolean
      force_rls: boolean
      identity: string
      options: Array<string> | null
      acl: string | null
      comment: string | null
    }>(
      `select c.relname as name, c.relkind::text as kind, c.relrowsecurity as rls,
              c.relforcerowsecurity as force_rls, c.relreplident::text as identity,
              c.reloptions as options, c.relacl::text as acl, obj_description(c.oid, 'pg_class') as comment
         from pg_class c
        where c.relnamespace = $1::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')`,
      [schema],
    )
    for (const r of relations) {
      const what = r.kind === "v" ? "view" : r.kind === "m" ? "materialized view" : "table"
      add(`${what} ${schema}.${r.name}`, {
        rls: r.rls,
        forceRls: r.force_rls,
        replicaIdentity: r.identity,
        options: r.options,
        acl: r.acl,
        comment: r.comment,
      })
    }

    const columns = yield* rows<{
      relation: string
      position: number
      name: string
      type: string
      not_null: boolean
      default_value: string | null
      identity: string
      generated: string
      collation: string | null
      comment: string | null
    }>(
      `select c.relname as relation,
              row_number() over (partition by a.attrelid order by a.attnum)::integer as position,
              a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
              pg_get_expr(d.adbin, d.adrelid) as default_value, a.attidentity::text as identity,
              a.attgenerated::text as generated,
              case when a.attcollation <> t.typcollation then co.collname end as collation,
              col_description(a.attrelid, a.attnum) as comment
         from pg_attribute a
         join pg_class c on c.oid = a.attrelid
         join pg_type t on t.oid = a.atttypid
         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         left join pg_collation co on co.oid = a.attcollation
        where c.relnamespace = $1::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and a.attnum > 0 and not a.attisdropped`,
      [schema],
    )
    for (const c of columns) {
      add(`column ${schema}.${c.relation}.${c.name}`, {
        position: c.position,
        type: c.type,
        notNull: c.not_null,
        default: c.default_value,
        identity: c.identity,
        generated: c.generated,
        collation: c.collation,
        comment: c.comment,
      })
    }

    const constraints = yield* rows<{ relation: string; name: string; definition: string }>(
      `select c.relname as relation, k.conname as name, pg_get_constraintdef(k.oid) as definition
         from pg_constraint k join pg_class c on c.oid = k.conrelid
        where c.relnamespace = $1::regnamespace
          -- Postgres 18 also lists NOT NULL as constraints; the columns say it on every version.
          and k.contype <> 'n'`,
      [schema],
    )
    for (const k of constraints) add(`constraint ${schema}.${k.relation}.${k.name}`, k.definition)

    const indexes = yield* rows<{ name: string; definition: string }>(
      `select i.relname as name, pg_get_indexdef(x.indexrelid) as definition
         from pg_index x join pg_class i on i.oid = x.indexrelid
        where i.relnamespace = $1::regnamespace`,
      [schema],
    )
    for (const i of indexes) add(`index ${schema}.${i.name}`, i.definition)

    const views = yield* rows<{ name: string; definition: string }>(
      `select c.relname as name, pg_get_viewdef(c.oid, true) as definition
         from pg_class c where c.relnamespace = $1::regnamespace and c.relkind in ('v', 'm')`,
      [schema],
    )
    for (const v of views) add(`view definition ${schema}.${v.name}`, v.definition)

    const functions = yield* rows<{
      signature: string
      definition: string
      acl: string | null
      comment: string | null
    }>(
      `select p.oid::regprocedure::text as signature, pg_get_functiondef(p.oid) as definition,
              p.proacl::text as acl, obj_description(p.oid, 'pg_proc') as comment
         from pg_proc p
        where p.pronamespace = $1::regnamespace and p.prokind in ('f', 'p')`,
      [schema],
    )
    for (const f of functions) {
      add(`function ${f.signature}`, f.definition)
      if (f.acl !== null || f.comment !== null)
        add(`function ${f.signature} (grants, comment)`, { acl: f.acl, comment: f.comment })
    }

    const triggers = yield* rows<{ relation: string; name: string; definition: string; enabled: string }>(
      `select c.relname as relation, t.tgname as name, pg_get_triggerdef(t.oid) as definition,
              t.tgenabled::text as enabled
         from pg_trigger t join pg_class c on c.oid = t.tgrelid
        where c.relnamespace = $1::regnamespace and not t.tgisinternal`,
      [schema],
    )
    for (const t of triggers)
      add(`trigger ${schema}.${t.relation}.${t.name}`, { definition: t.definition, enabled: t.enabled })

    const policies = yield* rows<{
      relation: string
      name: string
      permissive: boolean
      command: string
      roles: string
      qual: string | null
      with_check: string | null
    }>(
      `select c.relname as relation, p.polname as name, p.polpermissive as permissive,
              p.polcmd::text as command,
              (select string_agg(case when r = 0 then 'public' else r::regrole::text end, ',' order by 1)
                 from unnest(p.polroles) r) as roles,
              pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as with_check
         from pg_policy p join pg_class c on c.oid = p.polrelid
        where c.relnamespace = $1::regnamespace`,
      [schema],
    )
    for (const p of policies) {
      add(`policy ${schema}.${p.relation}.${p.name}`, {
        permissive: p.permissive,
        command: p.command,
        roles: p.roles,
        using: p.qual,
        withCheck: p.with_check,
      })
    }

    const types = yield* rows<{ name: string; kind: string; definition: string | null }>(
      `select t.typname as name, t.typtype::text as kind,
              case t.typtype when 'e' then (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                                              from pg_enum e where e.enumtypid = t.oid)
                             when 'd' then format_type(t.typbasetype, t.typtypmod) end as definition
         from pg_type t
         left join pg_class c on c.oid = t.typrelid
        where t.typnamespace = $1::regnamespace and t.typtype in ('c', 'd', 'e', 'r')
          and (t.typrelid = 0 or c.relkind = 'c')`,
      [schema],
    )
    for (const t of types) add(`type ${schema}.${t.name}`, { kind: t.kind, definition: t.definition })

    // The registry is data the schema creates (register_projection): part of what it defines.
    const registry = yield* rows<{ exists: boolean }>(`select to_regclass($1) is not null as exists`, [
      `${schema}.projections`,
    ])
    if (registry[0]?.exists === true && schema === "chronicle") {
      const projections = yield* rows<Record<string, unknown>>(
        `select name, version, built_version, mode, handler, tables, stream_categories, description, state
           from chronicle.projections order by name`,
      )
      for (const p of projections) add(`projection ${String(p.name)}`, p)
    }

    return new Map(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as Catalog
  })

export interface CatalogDifference {
  readonly key: string
  /** Absent when the object exists only on the right. */
  readonly left: string | undefined
  /** Absent when the object exists only on the left. */
  readonly right: string | undefined
}

/** The objects whose definitions differ, in key order. */
export const compareCatalogs = (left: Catalog, right: Catalog): ReadonlyArray<CatalogDifference> => {
  const keys = [...new Set([...left.keys(), ...right.keys()])].sort()
  return keys.flatMap((key) => {
    const l = left.get(key)
    const r = right.get(key)
    return l === r ? [] : [{ key, left: l, right: r }]
  })
}

/** A difference as a few lines a person can read. */
export const formatDifference = (d: CatalogDifference, names: { left: string; right: string }) => {
  if (d.left === undefined) return `+ ${d.key}: only in ${names.right}`
  if (d.right === undefined) return `- ${d.key}: only in ${names.left}`
  const l = d.left.split("\n")
  const r = d.right.split("\n")
  const first = l.findIndex((line, i) => line !== r[i])
  const at = first === -1 ? Math.min(l.length, r.length) : first
  return [
    `~ ${d.key}: differs (first at line ${at + 1})`,
    `    ${names.left}: ${l[at] ?? "(ends)"}`,
    `    ${names.right}: ${r[at] ?? "(ends)"}`,
  ].join("\n")
}
