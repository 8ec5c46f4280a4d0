/**
 * `chronicle token`: a user access token for development, signed with the configured project
 * JWT secret exactly as Supabase Auth signs one (HS256; `sub`, `aud` "authenticated", `iss`
 * `<SUPABASE_URL>/auth/v1`, `role` "authenticated"), so the server accepts it as that user.
 */
import { isUuid } from "@chronicle/store"
import { SignJWT } from "jose"
import { authConfig, ConfigError } from "./config.ts"

/** `30m`, `12h`, `7d` or a number of seconds. */
const DURATION = /^(\d+)([smhd]?)$/
const SECONDS = { "": 1, s: 1, m: 60, h: 3600, d: 86400 } as const

export const parseDuration = (value: string): number | null => {
  const match = DURATION.exec(value.trim())
  if (match === null) return null
  const seconds = Number(match[1]) * SECONDS[match[2] as keyof typeof SECONDS]
  return seconds >= 1 && seconds <= 366 * 86400 ? seconds : null
}

export const mintUserToken = async (
  userId: string,
  expiresInSeconds: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> => {
  const auth = authConfig(env)
  if (auth.jwtSecret === undefined || auth.supabaseUrl === undefined) {
    throw new ConfigError(
      auth.serviceKey === undefined && auth.supabaseUrl === undefined
        ? "token: no auth is configured, so the server runs in dev mode and needs no token. To require tokens, set SUPABASE_URL and SUPABASE_JWT_SECRET (the project's JWT secret), then mint one with this command"
        : "token: SUPABASE_JWT_SECRET is not set; tokens are signed with the project's JWT secret (with SUPABASE_URL, the issuer)",
    )
  }
  const sub = userId.toLowerCase()
  if (!isUuid(sub)) throw new ConfigError(`token: --user must be a UUID, got ${JSON.stringify(userId)}`)
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ role: "authenticated" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuer(`${auth.supabaseUrl.replace(/\/+$/, "")}/auth/v1`)
    .setAudience("authenticated")
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(new TextEncoder().encode(auth.jwtSecret))
}
