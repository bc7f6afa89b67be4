// Keeps the user documentation honest:
// - docs/troubleshooting.md covers every error code docs/errors.md lists (errors.test.ts keeps
//   errors.md in step with src/errors.ts), and the troubleshooting and compatibility guides name
//   no code that does not exist;
// - every relative link in README.md and docs/*.md points at a file that exists, and every
//   #anchor used by the two guides names a heading of its target.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { repoRoot } from '../../helpers/vectors.ts'
import { anchorsOf } from '../../helpers/markdown-anchors.ts'

const DOCS = join(repoRoot, 'docs')
const read = (path: string): string => readFileSync(path, 'utf8')

/** Codes in docs/errors.md's table, and which of them are marked retired. */
function documentedCodes (): { all: Set<string>, retired: Set<string> } {
  const all = new Set<string>()
  const retired = new Set<string>()
  for (const m of read(join(DOCS, 'errors.md')).matchAll(/^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|(.*)$/gm)) {
    const code = m[1] as string
    all.add(code)
    if (/\bretired\b/i.test(m[2] as string)) retired.add(code)
  }
  return { all, retired }
}

function codesIn (text: string): Set<string> {
  return new Set([...text.matchAll(/\bERR_[A-Z0-9_]+\b/g)].map(m => m[0]))
}

/** The text with fenced code blocks and inline code spans blanked (links there are not links). */
function proseOf (markdown: string): string {
  return markdown
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
    .replace(/(`+)[\s\S]*?\1/g, '')
}

/** Link targets: inline `[text](target "title")`, images, and reference definitions `[id]: target`. */
function linkTargets (markdown: string): string[] {
  const prose = proseOf(markdown)
  const targets: string[] = []
  for (const m of prose.matchAll(/\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1] as string)
  for (const m of prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/gm)) targets.push(m[1] as string)
  return targets.map(target => target.replace(/^<|>$/g, ''))
}

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i


function markdownFiles (): string[] {
  const docs = readdirSync(DOCS).filter(f => f.endsWith('.md')).map(f => join(DOCS, f))
  return [join(repoRoot, 'README.md'), ...docs]
}

interface Link { file: string, target: string, path: string, anchor: string | null }

function relativeLinks (file: string): Link[] {
  const links: Link[] = []
  for (const target of linkTargets(read(file))) {
    if (target === '' || EXTERNAL.test(target)) continue
    const hash = target.indexOf('#')
    const pathPart = (hash === -1 ? target : target.slice(0, hash)).replace(/\?.*$/, '')
    const anchor = hash === -1 ? null : target.slice(hash + 1)
    let decoded: string
    try {
      decoded = decodeURIComponent(pathPart)
    } catch {
      decoded = pathPart
    }
    // '' is the file itself (#anchor); a leading '/' is the repository root, as on GitHub.
    const path = decoded === '' ? file : decoded.startsWith('/') ? join(repoRoot, decoded) : resolve(dirname(file), decoded)
    links.push({ file, target, path, anchor })
  }
  return links
}

t.test('troubleshooting.md covers every documented error code', async t => {
  const { all, retired } = documentedCodes()
  t.ok(all.size >= 20, `docs/errors.md lists the codes (found ${all.size})`)
  const covered = codesIn(read(join(DOCS, 'troubleshooting.md')))
  const missing = [...all].filter(code => !retired.has(code) && !covered.has(code)).sort()
  t.same(missing, [], 'every code in docs/errors.md appears in docs/troubleshooting.md')
})

t.test('the guides name only codes that exist', async t => {
  const { all } = documentedCodes()
  for (const name of ['troubleshooting.md', 'compatibility.md']) {
    const unknown = [...codesIn(read(join(DOCS, name)))].filter(code => !all.has(code)).sort()
    t.same(unknown, [], `docs/${name} names no code missing from docs/errors.md`)
  }
})

t.test('every relative link in README.md and docs/*.md points at an existing file', async t => {
  const broken: string[] = []
  let checked = 0
  for (const file of markdownFiles()) {
    for (const link of relativeLinks(file)) {
      checked++
      if (!existsSync(link.path)) broken.push(`${relative(repoRoot, file)}: ${link.target}`)
    }
  }
  t.ok(checked > 0, `links found (${checked})`)
  t.same(broken, [], 'no broken relative links')
})

t.test('anchors used by troubleshooting.md and compatibility.md exist', async t => {
  const broken: string[] = []
  for (const name of ['troubleshooting.md', 'compatibility.md']) {
    const file = join(DOCS, name)
    for (const link of relativeLinks(file)) {
      if (link.anchor === null || link.anchor === '' || !link.path.endsWith('.md')) continue
      if (!existsSync(link.path) || !statSync(link.path).isFile()) continue // reported by the test above
      if (!anchorsOf(read(link.path)).has(decodeURIComponent(link.anchor).toLowerCase())) broken.push(`docs/${name}: ${link.target}`)
    }
  }
  t.same(broken, [], 'every #anchor names a heading of its target')
})

t.test('the link and anchor helpers', async t => {
  t.same(linkTargets('see [a](x.md), ![i](img.png "t"), `[no](code.md)`, [ext](https://e.x/y)\n\n[ref]: ../r.md\n\n```\n[no](fenced.md)\n```\n'),
    ['x.md', 'img.png', 'https://e.x/y', '../r.md'])
  t.same([...anchorsOf('# Title\n## Start-up: `ERR_CONFIG_INVALID`\n## `/status` 200 but `/readyz` 503\n## Title\n')],
    ['title', 'start-up-err_config_invalid', 'status-200-but-readyz-503', 'title-1'])
  t.same([...codesIn('`ERR_A` and ERR_B_2, not XERR_C')], ['ERR_A', 'ERR_B_2'])
})
