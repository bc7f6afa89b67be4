#!/usr/bin/env node
// Part of `npm run lint`: the folders of src/ must form a layered graph. dependency-cruiser's
// no-circular rule sees circles between files; this sees circles between folders (certs -> snp ->
// certs through different files), which would make "lower" and "higher" layers meaningless
// (docs/architecture.md). Prints each cycle with one import per edge, exits 1 if there is one.
import { execFileSync } from 'node:child_process'

const out = execFileSync(process.execPath, ['node_modules/.bin/depcruise', 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], { maxBuffer: 1 << 28 })
const { modules } = JSON.parse(out.toString())
const folderOf = (path) => { const parts = path.split('/'); return parts.length > 2 ? parts[1] : parts[1].replace(/\.[cm]?ts$/, '') }
const edges = new Map()
for (const m of modules) {
  if (!m.source.startsWith('src/')) continue
  for (const d of m.dependencies) {
    if (!d.resolved.startsWith('src/')) continue
    const a = folderOf(m.source)
    const b = folderOf(d.resolved)
    if (a === b) continue
    if (!edges.has(a)) edges.set(a, new Map())
    if (!edges.get(a).has(b)) edges.get(a).set(b, `${m.source} -> ${d.resolved}`)
  }
}
// Tarjan's strongly connected components: any component of more than one folder is a cycle.
let next = 0
const index = new Map(); const low = new Map(); const stack = []; const onStack = new Set(); const cycles = []
function visit (v) {
  index.set(v, next); low.set(v, next); next++; stack.push(v); onStack.add(v)
  for (const w of edges.get(v)?.keys() ?? []) {
    if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)))
  }
  if (low.get(v) === index.get(v)) {
    const component = []
    let w
    do { w = stack.pop(); onStack.delete(w); component.push(w) } while (w !== v)
    if (component.length > 1) cycles.push(component)
  }
}
for (const v of edges.keys()) if (!index.has(v)) visit(v)
if (cycles.length === 0) {
  console.log(`folder layers: no cycles between the ${new Set([...edges.keys(), ...[...edges.values()].flatMap((m) => [...m.keys()])]).size} folders and root modules of src/`)
  process.exit(0)
}
for (const cycle of cycles) {
  console.error(`folder cycle: ${cycle.join(', ')}`)
  for (const a of cycle) for (const b of cycle) { const via = edges.get(a)?.get(b); if (via !== undefined) console.error(`  ${via}`) }
}
process.exit(1)
