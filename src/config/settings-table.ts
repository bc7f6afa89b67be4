// The README's configuration table, rendered from the declared settings, and its place between
// two markers in README.md (scripts/gen-config-doc.mjs writes it; a test checks it is current).
import type { Setting } from './setting.ts'
import { SETTINGS } from './settings.ts'

/** A cell's Markdown: pipes escaped, never a line break. */
function cell (markdown: string): string {
  return markdown.replace(/\r?\n/g, ' ').replace(/(?<!\\)\|/g, '\\|')
}

function flagCell (s: Setting): string {
  if (s.flag === undefined) return ''
  const dash = (name: string): string => (s.reference === true && name === s.flag ? `-${name}` : `--${name}`)
  return [s.flag, ...(s.aliases ?? [])].map((n) => `\`${dash(n)}\``).join(', ')
}

/** The README's configuration table: flag | environment | default | meaning, one row per setting. */
export function renderSettingsTable (settings: readonly Setting[] = SETTINGS): string {
  const row = (cells: readonly string[]): string => `|${cells.map((c) => (c === '' ? ' ' : ` ${c} `)).join('|')}|`
  return [
    row(['flag', 'environment', 'default', 'meaning']),
    row(['---', '---', '---', '---']),
    ...settings.map((s) => row([flagCell(s), s.env === undefined ? '' : `\`${s.env}\``, cell(s.default), cell(s.description)]))
  ].join('\n') + '\n'
}

/** The markers around the generated table in README.md. */
export const SETTINGS_BEGIN = '<!-- settings:begin -->'
export const SETTINGS_END = '<!-- settings:end -->'

/** `readme` with the text between the markers replaced by `table`; throws when the markers are missing. */
export function replaceSettingsBlock (readme: string, table: string = renderSettingsTable()): string {
  const begin = readme.indexOf(SETTINGS_BEGIN)
  const end = readme.indexOf(SETTINGS_END)
  if (begin === -1 || end === -1 || end < begin) throw new Error(`README.md has no ${SETTINGS_BEGIN} … ${SETTINGS_END} block`)
  return `${readme.slice(0, begin + SETTINGS_BEGIN.length)}\n\n${table}\n${readme.slice(end)}`
}
