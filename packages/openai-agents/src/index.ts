export { ChronicleSession, type ChronicleSessionOptions, messageOf } from "./session.ts"
