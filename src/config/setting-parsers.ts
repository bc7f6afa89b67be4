// Parsers of one raw setting value (a flag or an environment variable) for loadConfig
// (./config.ts): each returns the value, or the fallback after pushing a problem that names the
// key, never the value.
import { parseBool } from './flags.ts'

/** The value, or null when it is unset or blank. */
export function nonEmpty (v: string | undefined): string | null {
  return v === undefined || v.trim() === '' ? null : v
}

/** A TCP port number 0..65535; 0 (and a problem) otherwise. */
export function parsePort (raw: string, key: string, problems: string[]): number {
  const n = /^\d{1,5}$/.test(raw.trim()) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    problems.push(`${key} must be a TCP port number 0..65535`)
    return 0
  }
  return n
}

/** A positive number; `fallback` when unset (or, with a problem, invalid). */
export function parsePositive (raw: string | null, key: string, fallback: number, problems: string[]): number {
  if (raw === null) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) {
    problems.push(`${key} must be a positive number`)
    return fallback
  }
  return n
}

/** A whole number from 0 to `max`; `fallback` when unset (or, with a problem, invalid). */
export function parseCount (raw: string | null, key: string, fallback: number, max: number, problems: string[]): number {
  if (raw === null) return fallback
  const n = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n > max) {
    problems.push(`${key} must be a whole number from 0 to ${max}`)
    return fallback
  }
  return n
}

/** A boolean from the flag, else the variable (parseBool's spellings); false when neither is set (or, with a problem, invalid). */
export function boolSetting (flag: string | undefined, envValue: string | undefined, key: string, problems: string[]): boolean {
  const raw = flag ?? nonEmpty(envValue)
  if (raw === null) return false
  const b = parseBool(raw)
  if (b === null) {
    problems.push(`${key} must be true or false`)
    return false
  }
  return b
}
