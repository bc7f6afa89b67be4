// The rules `promtool check metrics` applies to an exposition, in TypeScript, so CI (which has no
// promtool) checks them too. promtool runs client_golang's promlint
// (prometheus/client_golang, prometheus/testutil/promlint): one problem per metric family, with
// the same sentences, for
// - help: a family without HELP text;
// - counters: a counter whose name does not end in `_total`, and anything else whose name does;
// - histogram and summary suffixes: `_count`, `_sum`, `_bucket` on other types;
// - the type in the name (`_gauge`, `_counter_`, ...);
// - `:` in a name (reserved for recording rules);
// - camelCase metric and label names;
// - abbreviated units (`_ms`, `_sec`, `_kb`, ...) and non-base units (`_milliseconds`, `_hours`,
//   `_kilobytes`, `_bits`, ...): https://prometheus.io/docs/practices/naming/#base-units.
// skr adds one rule of its own: a status is labelled `status` everywhere (never `status_code`).
// test/unit/observability/exposition.test.ts runs it next to the real promtool when that is installed.

/** One problem with one metric family, as promtool prints it: `<family> <text>`. */
export interface LintProblem {
  metric: string
  text: string
}

/** One metric family of a text exposition (format 0.0.4). */
export interface MetricFamily {
  name: string
  type: string
  help: string | null
  /** Label names used by its samples (le and quantile included). */
  labelNames: Set<string>
}

// promlint's tables (testutil/promlint/validations/units.go).
const BASE_UNITS = new Set(['amperes', 'bytes', 'celsius', 'grams', 'joules', 'kelvin', 'meters', 'metres', 'seconds', 'volts'])
const NON_BASE_UNITS: Readonly<Record<string, string>> = {
  minutes: 'seconds',
  hours: 'seconds',
  days: 'seconds',
  weeks: 'seconds',
  kelvins: 'kelvin',
  fahrenheit: 'celsius',
  rankine: 'celsius',
  inches: 'meters',
  yards: 'meters',
  miles: 'meters',
  bits: 'bytes',
  calories: 'joules',
  pounds: 'grams',
  ounces: 'grams'
}
const UNIT_PREFIXES = ['pico', 'nano', 'micro', 'milli', 'centi', 'deci', 'deca', 'hecto', 'kilo', 'kibi', 'mega', 'mibi', 'giga', 'gibi', 'tera', 'tebi', 'peta', 'pebi']
const UNIT_ABBREVIATIONS = new Set(['s', 'ms', 'us', 'ns', 'sec', 'b', 'kb', 'mb', 'gb', 'tb', 'pb', 'm', 'h', 'd'])
const CAMEL = /[a-z][A-Z]/

/** Parses HELP, TYPE and sample lines into families (samples of a histogram count under its name). */
export function parseExposition (text: string): MetricFamily[] {
  const families = new Map<string, MetricFamily>()
  const family = (name: string): MetricFamily => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, type: 'untyped', help: null, labelNames: new Set() }
      families.set(name, f)
    }
    return f
  }
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
    if (meta !== null) {
      const f = family(meta[2] as string)
      if (meta[1] === 'HELP') f.help = meta[3] ?? ''
      else f.type = meta[3] ?? 'untyped'
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line)
    if (sample === null) continue
    const name = sample[1] as string
    const owner = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? family(name)
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) owner.labelNames.add(m[1] as string)
  }
  return [...families.values()]
}

function unitProblem (name: string): string | null {
  for (const token of name.split('_')) {
    if (BASE_UNITS.has(token)) return null
    const base = NON_BASE_UNITS[token]
    if (base !== undefined) return `use base unit "${base}" instead of "${token}"`
    for (const prefix of UNIT_PREFIXES) {
      if (!token.startsWith(prefix)) continue
      const rest = token.slice(prefix.length)
      if (BASE_UNITS.has(rest)) return `use base unit "${rest}" instead of "${token}"`
      const restBase = NON_BASE_UNITS[rest]
      if (restBase !== undefined) return `use base unit "${restBase}" instead of "${token}"`
    }
  }
  return null
}

/** The problems promlint (and skr's own status-label rule) finds in one family. */
export function lintFamily (f: MetricFamily): string[] {
  const problems: string[] = []
  const n = f.name
  if (f.help === null || f.help === '') problems.push('no help text')
  const unit = unitProblem(n)
  if (unit !== null) problems.push(unit)
  if (f.type === 'counter' && !n.endsWith('_total')) problems.push('counter metrics should have "_total" suffix')
  if (f.type !== 'counter' && f.type !== 'untyped' && n.endsWith('_total')) problems.push('non-counter metrics should not have "_total" suffix')
  if (f.type !== 'histogram' && f.type !== 'summary') {
    for (const suffix of ['_count', '_sum', '_bucket']) {
      if (n.endsWith(suffix)) problems.push(`non-histogram and non-summary metrics should not have "${suffix}" suffix`)
    }
  }
  if (f.type !== 'histogram' && f.labelNames.has('le')) problems.push('non-histogram metrics should not have "le" label')
  if (f.type !== 'summary' && f.labelNames.has('quantile')) problems.push('non-summary metrics should not have "quantile" label')
  if (f.type !== 'untyped' && (n.toLowerCase().includes(`_${f.type}_`) || n.toLowerCase().endsWith(`_${f.type}`))) {
    problems.push(`metric name should not include type '${f.type}'`)
  }
  if (n.includes(':')) problems.push('metric names should not contain \':\'')
  if (CAMEL.test(n)) problems.push('metric names should be written in \'snake_case\' not \'camelCase\'')
  if ([...f.labelNames].some(l => CAMEL.test(l))) problems.push('label names should be written in \'snake_case\' not \'camelCase\'')
  if (n.split('_').some(token => UNIT_ABBREVIATIONS.has(token))) problems.push('metric names should not contain abbreviated units')
  if (f.labelNames.has('status_code')) problems.push('a status is labelled "status" on every skr series, not "status_code"')
  return problems
}

/** Every problem in a text exposition, families in order. */
export function lintExposition (text: string): LintProblem[] {
  return parseExposition(text).flatMap(f => lintFamily(f).map(problem => ({ metric: f.name, text: problem })))
}
