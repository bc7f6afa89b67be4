// Every setting skr reads at start-up, declared once: its key, the serve flag (with aliases) and
// the environment variable that set it, the default as users see it, and what it means (the
// shape: ./setting.ts; the entries: ./serving-settings.ts, then ./release-settings.ts). The serve
// command's flags (SERVE_FLAGS in config.ts, by ./serve-flags.ts) are derived from this list,
// loadConfig reads the environment names from it, and the README's configuration table is
// rendered from it (./settings-table.ts) by scripts/gen-config-doc.mjs
// (test/unit/config/settings.test.ts fails when the README is stale, or when loadConfig reads a
// variable this list does not declare).
import type { Setting } from './setting.ts'
import { SERVING_SETTINGS } from './serving-settings.ts'
import { RELEASE_SETTINGS } from './release-settings.ts'

/** Every declared setting, in the order of the README's table. */
export const SETTINGS = [...SERVING_SETTINGS, ...RELEASE_SETTINGS] as const satisfies readonly Setting[]

/** The key of a declared setting. */
export type SettingKey = typeof SETTINGS[number]['key']

/** Settings by key. */
export const SETTING_BY_KEY: Readonly<Record<SettingKey, Setting>> = Object.freeze(
  Object.fromEntries(SETTINGS.map((s) => [s.key, s])) as Record<SettingKey, Setting>
)

/** The environment variable of a setting (every declared setting has one). */
export function envName (key: SettingKey): string {
  const name = SETTING_BY_KEY[key].env
  if (name === undefined) throw new TypeError(`setting ${key} has no environment variable`)
  return name
}

/** The canonical flag name of a setting (a key of SERVE_FLAGS). */
export function flagName (key: SettingKey): string {
  const name = SETTING_BY_KEY[key].flag
  if (name === undefined) throw new TypeError(`setting ${key} has no flag`)
  return name
}
