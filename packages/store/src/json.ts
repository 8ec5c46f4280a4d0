import { Predicate } from "effect"

/** A value that survives a round trip through JSON and Postgres jsonb unchanged. */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * Returns a description of the first part of `value` that is not plain JSON, with its path,
 * or undefined when the whole value is JSON. Stricter than JSON.stringify, which silently
 * drops undefined and functions and turns NaN into null: here such values are refused, as
 * are strings Postgres jsonb cannot store (NUL characters, lone surrogates).
 */
export const findNonJson = (value: unknown, path: string): string | undefined => {
  const seen = new Set<object>()
  const walk = (v: unknown, at: string): string | undefined => {
    if (v === null || typeof v === "boolean") return undefined
    if (typeof v === "number")
      return Number.isFinite(v) ? undefined : `${at} is ${v}, which JSON cannot represent`
    if (typeof v === "string") {
      if (v.includes("\u0000")) return `${at} contains a NUL character, which Postgres cannot store`
      if (!v.isWellFormed()) return `${at} contains a lone UTF-16 surrogate`
      return undefined
    }
    if (typeof v !== "object") return `${at} is a ${typeof v}, which is not JSON`
    if (seen.has(v)) return `${at} is a circular reference`
    seen.add(v)
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const problem = walk(v[i], `${at}[${i}]`)
          if (problem) return problem
        }
        return undefined
      }
      const proto = Object.getPrototypeOf(v)
      if (proto !== Object.prototype && proto !== null) {
        return `${at} is a ${v.constructor?.name ?? "non-plain object"}, not a plain JSON object`
      }
      for (const [key, child] of Object.entries(v)) {
        if (key.includes("\u0000")) return `${at} has a key with a NUL character, which Postgres cannot store`
        if (!key.isWellFormed()) return `${at} has a key with a lone UTF-16 surrogate`
        const problem = walk(child, `${at}.${key}`)
        if (problem) return problem
      }
      return undefined
    } finally {
      seen.delete(v)
    }
  }
  return walk(value, path)
}

export const isJsonObject = (value: unknown): value is { readonly [key: string]: Json } =>
  Predicate.isObject(value) && !Array.isArray(value)
