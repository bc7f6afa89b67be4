// skr's /metrics passes the real `promtool check metrics` (Prometheus's linter) where it is
// installed (Debian: `apt-get install prometheus`); without it the case skips, saying so. The same
// rules in TypeScript run everywhere: test/unit/observability/exposition.test.ts.
import t from 'tap'
import { runChild, type Owner } from '../../helpers/child-process.ts'
import { BAD, busyExposition, servedExposition } from '../../helpers/expositions.ts'

const promtool = await runChild(t, 'promtool', ['--version'])
const hasPromtool = promtool.error === undefined && promtool.status === 0

async function promtoolCheck (owner: Owner, text: string): Promise<{ status: number | null, output: string }> {
  const r = await runChild(owner, 'promtool', ['check', 'metrics'], { input: text })
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

t.test('promtool check metrics is clean', {
  skip: hasPromtool ? false : 'SKIPPED: promtool is not installed (Debian: apt-get install prometheus); the TypeScript checker of test/unit/observability/exposition.test.ts still runs'
}, async t => {
  const bad = await promtoolCheck(t, BAD)
  t.not(bad.status, 0, 'promtool is really checking: it refuses a bad exposition')
  t.match(bad.output, 'non-counter metrics should not have "_total" suffix')
  for (const [what, text] of [['a registry with every series observed', await busyExposition()], ['GET /metrics of an app', await servedExposition()]] as const) {
    const r = await promtoolCheck(t, text)
    t.equal(r.output, '', `${what}: no problems`)
    t.equal(r.status, 0, `${what}: exit 0`)
  }
})
