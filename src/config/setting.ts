// The shape of one of skr's settings, as ./settings.ts declares them.
//
// `default` and `description` are Markdown (a `|` needs no escaping; the renderer does it).
// `help` is the flag's plain-text line for `skr serve --help`; the environment variable and the
// default are appended to it.

/** One setting: at most one flag (with aliases) and one environment variable. */
export interface Setting {
  /** Stable name, e.g. 'port' (not shown to users). */
  readonly key: string
  /** The canonical flag name without dashes (a key of SERVE_FLAGS). */
  readonly flag?: string
  /** Other spellings of the flag, without dashes. */
  readonly aliases?: readonly string[]
  /** The flag's value type (default 'string'). */
  readonly type?: 'string' | 'boolean'
  /** The reference sidecar's flags are shown Go-style (`-port`); skr's own as `--host`. */
  readonly reference?: boolean
  /** The flag's one-line --help text (without env and default). */
  readonly help?: string
  /** The environment variable, exactly as loadConfig reads it. */
  readonly env?: string
  /** The default as shown to users, with units (Markdown); '–' when there is none. */
  readonly default: string
  /** What it does (Markdown). */
  readonly description: string
}

/** The default shown for a setting that has none. */
export const NONE = '–'
