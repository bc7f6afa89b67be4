// Keeps the pointers from code and docs to documentation inside the repository (issue 14 §6):
// - no file under src/, test/, docs/, bench/, scripts/, deploy/ or README.md refers to the
//   research notes that live outside the repository (the wire-protocol, SEV-SNP and user notes,
//   cited by section number), unless the name is an in-repo path that exists;
// - every `docs/<file>.md` named in src/ or test/ exists, and its `#anchor`, if any, is a heading
//   of that file (GitHub's anchor rules);
// - every relative markdown link with an #anchor in README.md and docs/*.md names a heading of
//   its target (troubleshooting.test.ts checks that the files exist).
// The notes' names are assembled from pieces so this file does not match its own search.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { repoRoot } from '../../helpers/vectors.ts'
import { anchorsOf } from '../../helpers/markdown-anchors.ts'

const SELF = fileURLToPath(import.meta.url)
const SCANNED = ['src', 'test', 'docs', 'bench', 'scripts', 'deploy']
const SKIP_DIRS = new Set(['node_modules', '.tap', 'dist', 'build', 'coverage'])
const NOTE_NAMES = ['wire' + '-protocols', 'users-and' + '-ecosystem']
const SECTION = '\u00a7'

const read = (path: string): string => readFileSync(path, 'utf8')

/** Every text file (no NUL byte) under the scanned folders, plus README.md, except this test. */
function scannedFiles (): string[] {
  const files: string[] = [join(repoRoot, 'README.md')]
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) walk(path)
      } else if (entry.isFile() && path !== SELF && !readFileSync(path).includes(0)) {
        files.push(path)
      }
    }
  }
  for (const dir of SCANNED) if (existsSync(join(repoRoot, dir))) walk(join(repoRoot, dir))
  return files
}

/** The path-like token around `index` in `line` (letters, digits and . _ / - characters). */
function pathAround (line: string, index: number, length: number): string {
  let start = index
  let end = index + length
  while (start > 0 && /[\w./-]/.test(line[start - 1] as string)) start--
  while (end < line.length && /[\w./-]/.test(line[end] as string)) end++
  return line.slice(start, end).replace(/[.]+$/, '')
}

/** Does `token`, named in `file`, resolve to an existing file (from the repository root or from the file's folder)? */
function existsInRepo (token: string, file: string): boolean {
  if (token.includes('shared/')) return false
  return [join(repoRoot, token), resolve(dirname(file), token)].some(path => path.startsWith(repoRoot + sep) && existsSync(path))
}

/** References to the outside notes in `text`: a note name that is not an existing in-repo path, or a §-style SEV-SNP note section. */
function noteReferences (text: string, file: string): string[] {
  const found: string[] = []
  text.split('\n').forEach((line, i) => {
    for (const name of NOTE_NAMES) {
      for (let at = line.indexOf(name); at !== -1; at = line.indexOf(name, at + name.length)) {
        const token = pathAround(line, at, name.length)
        if (!existsInRepo(token, file)) found.push(`${i + 1}: ${token}`)
      }
    }
    if (line.includes(`sev-snp.md ${SECTION}`)) found.push(`${i + 1}: sev-snp.md ${SECTION}…`)
    if (/(?:\.\.\/)+shared\/docs\//.test(line)) found.push(`${i + 1}: ../shared/docs/…`)
  })
  return found
}


/** `docs/<file>.md[#anchor]` mentions in source text (a path starting at docs/, not a folder named docs elsewhere). */
function docReferences (text: string): Array<{ line: number, doc: string, anchor: string | null }> {
  const refs: Array<{ line: number, doc: string, anchor: string | null }> = []
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(/(?<![\w./-])docs\/([\w.-]+\.md)(?:#([\w-]+))?/g)) {
      refs.push({ line: i + 1, doc: m[1] as string, anchor: m[2] ?? null })
    }
  })
  return refs
}

const anchorCache = new Map<string, Set<string>>()
function anchorsOfFile (path: string): Set<string> {
  let anchors = anchorCache.get(path)
  if (anchors === undefined) {
    anchors = anchorsOf(read(path))
    anchorCache.set(path, anchors)
  }
  return anchors
}

/** Relative `[text](file.md#anchor)` links outside code spans and fences. */
function markdownAnchorLinks (markdown: string): Array<{ target: string, anchor: string }> {
  const prose = markdown
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
    .replace(/(`+)[\s\S]*?\1/g, '')
  const links: Array<{ target: string, anchor: string }> = []
  for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1] as string
    if (/^(?:[a-z][a-z0-9+.-]*:|\/\/)/i.test(target)) continue
    const hash = target.indexOf('#')
    if (hash === -1) continue
    links.push({ target: target.slice(0, hash), anchor: decodeURIComponent(target.slice(hash + 1)) })
  }
  return links
}

t.test('nothing refers to the research notes outside the repository', async t => {
  const files = scannedFiles()
  t.ok(files.length > 100, `files scanned (${files.length})`)
  const found: string[] = []
  for (const file of files) {
    for (const ref of noteReferences(read(file), file)) found.push(`${relative(repoRoot, file)}:${ref}`)
  }
  t.same(found, [], 'every reference points into the repository (docs/protocols.md, docs/sev-snp.md, …)')
})

t.test('every docs/<file>.md[#anchor] named in src/ and test/ resolves', async t => {
  const broken: string[] = []
  let anchored = 0
  for (const file of scannedFiles()) {
    const rel = relative(repoRoot, file)
    if (!rel.startsWith(`src${sep}`) && !rel.startsWith(`test${sep}`)) continue
    for (const ref of docReferences(read(file))) {
      const path = join(repoRoot, 'docs', ref.doc)
      if (!existsSync(path) || !statSync(path).isFile()) {
        broken.push(`${rel}:${ref.line}: docs/${ref.doc} does not exist`)
        continue
      }
      if (ref.anchor === null) continue
      anchored++
      if (!anchorsOfFile(path).has(ref.anchor)) broken.push(`${rel}:${ref.line}: docs/${ref.doc}#${ref.anchor} is no heading`)
    }
  }
  t.ok(anchored >= 50, `anchored references checked (${anchored})`)
  t.same(broken, [], 'every file exists and every anchor names a heading')
})

t.test('#anchors of relative links in README.md and docs/*.md name headings', async t => {
  const docs = readdirSync(join(repoRoot, 'docs')).filter(f => f.endsWith('.md')).map(f => join(repoRoot, 'docs', f))
  const broken: string[] = []
  for (const file of [join(repoRoot, 'README.md'), ...docs]) {
    for (const link of markdownAnchorLinks(read(file))) {
      const path = link.target === '' ? file : resolve(dirname(file), decodeURIComponent(link.target))
      if (!path.endsWith('.md') || !existsSync(path) || !statSync(path).isFile()) continue // troubleshooting.test.ts reports missing files
      if (!anchorsOfFile(path).has(link.anchor.toLowerCase())) broken.push(`${relative(repoRoot, file)}: ${link.target}#${link.anchor}`)
    }
  }
  t.same(broken, [], 'every #anchor names a heading of its target')
})

t.test('the helpers', async t => {
  const notes = NOTE_NAMES[0] as string
  t.same(noteReferences(`// see ${notes} ${SECTION}2.3\n// docs/${notes}.md ${SECTION}5`, join(repoRoot, 'src', 'x.ts')),
    [`1: ${notes}`, `2: docs/${notes}.md`], 'note names that are no in-repo file')
  t.same(noteReferences(`(docs/sev-snp.md ${SECTION}3.1) and ../shared/docs/notes.md`, join(repoRoot, 'src', 'x.ts')),
    [`1: sev-snp.md ${SECTION}…`, '1: ../shared/docs/…'], 'section-style and outside-path references')
  t.same(noteReferences('docs/sev-snp.md#report-signature, docs/protocols.md#thim', join(repoRoot, 'src', 'x.ts')), [],
    'in-repo references pass')
  t.same(docReferences('a (docs/protocols.md#maa-token, docs/sev-snp.md).\nx/docs/other.md'),
    [{ line: 1, doc: 'protocols.md', anchor: 'maa-token' }, { line: 1, doc: 'sev-snp.md', anchor: null }])
  t.same([...anchorsOf('# T\n## MSG_REPORT_RSP\n## POLICY (0x008)\n## `POST /key/release`\n## Layout (little-endian; offsets in hex)\n## T\n')],
    ['t', 'msg_report_rsp', 'policy-0x008', 'post-keyrelease', 'layout-little-endian-offsets-in-hex', 't-1'])
  t.same(markdownAnchorLinks('[a](protocols.md#thim) `[b](x.md#y)` [c](https://e.x/#z) [d](#local)'),
    [{ target: 'protocols.md', anchor: 'thim' }, { target: '', anchor: 'local' }])
})
