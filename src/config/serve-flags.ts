// The serve command's flags (SERVE_FLAGS in ./config.ts), derived from the declared settings
// that have one: each flag's --help line names its environment variable and its default.
import type { FlagSpec, FlagSpecs } from './flags.ts'
import { NONE, type Setting } from './setting.ts'
import { SETTINGS } from './settings.ts'

/** Markdown → the plain text of --help: backticks dropped. */
function plain (markdown: string): string {
  return markdown.replace(/`/g, '')
}

/** The serve command's flags, from the settings that have one. */
export function serveFlags (settings: readonly Setting[] = SETTINGS): FlagSpecs {
  const specs: Record<string, FlagSpec> = {}
  for (const s of settings) {
    if (s.flag === undefined) continue
    const facts = [
      ...(s.env === undefined ? [] : [`env ${s.env}`]),
      ...(s.default === NONE ? [] : [`default ${plain(s.default)}`])
    ]
    const help = `${s.help ?? plain(s.description)}${facts.length === 0 ? '' : ` (${facts.join('; ')})`}`
    specs[s.flag] = { type: s.type ?? 'string', ...(s.aliases === undefined ? {} : { aliases: s.aliases }), help }
  }
  return specs
}
