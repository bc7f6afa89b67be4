// The deployment examples, parsed (yaml for Kubernetes, JSON.parse for ARM, lines for Bicep)
// and checked for what skr relies on: the reference's env names, a SkrSideCarArgs skr accepts,
// exec probes running the image's `healthcheck`, the UVM security-context mount, Kata and
// confidential SKUs, the app talking to localhost:8080, and nothing privileged or exposed.
// The skr container's env is also fed to loadConfig, so a manifest skr would refuse fails here.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '../../../src/config.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

type Json = Record<string, unknown>
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Json : {})
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

const HEALTHCHECK = ['/nodejs/bin/node', '/app/bin/skr.js', 'healthcheck']
const ENTRYPOINT = JSON.parse(/^ENTRYPOINT\s+(.*)$/m.exec(read('Dockerfile'))?.[1] ?? 'null') as string[]
const KATA_DIR = '/opt/confidential-containers/share/kata-containers'

interface EnvVar { name: string; value: string }

function envOf (container: Json): EnvVar[] {
  return arr(container.env ?? container.environmentVariables).map(e => ({ name: String(obj(e).name), value: String(obj(e).value) }))
}

function envMap (container: Json): Record<string, string> {
  return Object.fromEntries(envOf(container).map(e => [e.name, e.value]))
}

/** Every key anywhere in a parsed document, with its value (for "nothing privileged"). */
function walk (value: unknown, visit: (key: string, v: unknown) => void): void {
  if (Array.isArray(value)) for (const v of value) walk(v, visit)
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) { visit(k, v); walk(v, visit) }
  }
}

function noPrivilege (t: Tap, doc: unknown, where: string): void {
  walk(doc, (key, v) => {
    if (key === 'privileged') t.not(v, true, `${where}: no privileged container`)
    if (key === 'hostNetwork' || key === 'hostPID' || key === 'hostIPC') t.not(v, true, `${where}: no ${key}`)
    if (key === 'allowPrivilegeEscalation') t.equal(v, false, `${where}: allowPrivilegeEscalation false`)
    if (key === 'httpGet') t.fail(`${where}: an httpGet probe dials the pod IP; skr listens on loopback`)
  })
}

type Tap = Test

/** Checks the env skr reads: exact reference names, values skr's own config loader accepts. */
function checkSkrEnv (t: Tap, container: Json, where: string): Record<string, string> {
  const env = envMap(container)
  for (const name of ['SkrSideCarArgs', 'Port', 'LogLevel']) t.ok(Object.hasOwn(env, name), `${where}: env ${name} (the reference's exact name)`)
  const names = envOf(container).map(e => e.name)
  t.same(names.filter(n => /^(port|loglevel|skrsidecarargs|logfile|servertype)$/i.test(n) && !['Port', 'LogLevel', 'SkrSideCarArgs', 'LogFile', 'ServerType'].includes(n)), [],
    `${where}: no mis-cased reference variable (they are case-sensitive)`)
  t.equal(env.Port, '8080', `${where}: Port 8080, where the app calls`)
  const config = loadConfig([], env)
  t.equal(config.port, 8080, `${where}: loadConfig accepts the env`)
  t.equal(config.serverType, 'http')
  t.equal(config.azure.certcache.endpointType, 'LocalTHIM', `${where}: SkrSideCarArgs decodes to a LocalTHIM certcache`)
  return env
}

function checkProbe (t: Tap, probe: unknown, where: string): void {
  const command = arr(obj(obj(probe).exec).command)
  t.same(command, HEALTHCHECK, `${where}: exec probe runs skr healthcheck`)
  t.same(command.slice(0, 2), ENTRYPOINT, `${where}: through the Dockerfile's entrypoint`)
  const timeout = obj(probe).timeoutSeconds
  t.ok(typeof timeout === 'number' && timeout * 1000 > 2000, `${where}: probe timeout above healthcheck's 2000 ms default`)
}

function checkCommand (t: Tap, container: Json, where: string): void {
  const command = container.command
  if (command === undefined) {
    t.pass(`${where}: no command; the image ENTRYPOINT serves`)
    return
  }
  const ok = JSON.stringify(command) === JSON.stringify(['/skr.sh']) || JSON.stringify(command) === JSON.stringify(ENTRYPOINT)
  t.ok(ok, `${where}: command is /skr.sh (kept by the image) or the entrypoint`)
  t.equal(container.args, undefined, `${where}: no args (they would be read as SkrSideCarArgs/Port positionals)`)
}

function checkApp (t: Tap, container: Json, where: string): void {
  const values = envOf(container).map(e => e.value)
  t.ok(values.some(v => /^http:\/\/localhost:8080\/?$/.test(v)), `${where}: the app talks to http://localhost:8080`)
  t.notOk(values.some(v => /^https?:\/\/(?!localhost|127\.0\.0\.1)[^/]+:8080/.test(v)), `${where}: and nowhere else on 8080`)
}

function podSpec (doc: Json): { spec: Json; labels: Json } {
  if (doc.kind === 'Pod') return { spec: obj(doc.spec), labels: obj(obj(doc.metadata).labels) }
  const template = obj(obj(doc.spec).template)
  return { spec: obj(template.spec), labels: obj(obj(template.metadata).labels) }
}

function parseYaml (path: string): Json[] {
  const docs = parseAllDocuments(read(path))
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0]?.message ?? 'parse error'}`)
  return docs.map(d => obj(d.toJS()))
}

function checkKataPod (t: Tap, path: string, mode: 'native' | 'classic'): void {
  const docs = parseYaml(path)
  const workload = docs.find(d => d.kind === 'Pod' || d.kind === 'Deployment')
  if (workload === undefined) return void t.fail(`${path}: a Pod or Deployment`)
  noPrivilege(t, workload, path)
  const { spec, labels } = podSpec(workload)
  // The RuntimeClass the AKS confidential-containers docs use (its handler is kata-cc).
  t.equal(spec.runtimeClassName, 'kata-cc-isolation', `${path}: runtimeClassName kata-cc-isolation`)
  t.equal(labels['azure.workload.identity/use'], 'true', `${path}: workload identity label, a string "true"`)
  t.type(spec.serviceAccountName, 'string', `${path}: a service account (federated with the identity)`)
  if (workload.kind === 'Deployment') {
    const selector = obj(obj(obj(workload.spec).selector).matchLabels)
    for (const [k, v] of Object.entries(selector)) t.equal(labels[k], v, `${path}: selector ${k} matches the template`)
  }

  const list = mode === 'native' ? arr(spec.initContainers) : arr(spec.containers)
  const skr = obj(list.find(c => obj(c).name === 'skr'))
  t.match(skr.image, /SKR_IMAGE/, `${path}: skr container with the image placeholder`)
  checkCommand(t, skr, path)
  const env = checkSkrEnv(t, skr, path)

  // The UVM endorsement: the node's reference-info file, where UVM_SECURITY_CONTEXT_DIR points.
  t.equal(env.UVM_SECURITY_CONTEXT_DIR, KATA_DIR, `${path}: UVM_SECURITY_CONTEXT_DIR is the Kata directory`)
  const mount = obj(arr(skr.volumeMounts).find(m => obj(m).mountPath === `${KATA_DIR}/reference-info-base64`))
  t.equal(mount.readOnly, true, `${path}: reference-info-base64 mounted read-only in that directory`)
  const volume = obj(arr(spec.volumes).find(v => obj(v).name === mount.name))
  t.equal(obj(volume.hostPath).path, `${KATA_DIR}/reference-info-base64`, `${path}: from the node's file, as the reference mounts it`)

  if (mode === 'native') {
    t.equal(skr.restartPolicy, 'Always', `${path}: native sidecar (init container, restartPolicy Always)`)
    checkProbe(t, skr.startupProbe, `${path} startupProbe`)
  } else {
    t.equal(arr(spec.initContainers).length, 0, `${path}: classic form has no init containers`)
  }
  checkProbe(t, skr.readinessProbe, `${path} readinessProbe`)
  checkProbe(t, skr.livenessProbe, `${path} livenessProbe`)
  const security = obj(skr.securityContext)
  t.equal(security.runAsNonRoot, true, `${path}: the default image is non-root`)
  t.same(obj(security.capabilities).drop, ['ALL'])

  const app = obj(arr(spec.containers).find(c => obj(c).name === 'app'))
  checkApp(t, app, path)
  t.same(arr(spec.containers).map(c => obj(c).name), mode === 'native' ? ['app'] : ['skr', 'app'])
}

t.test('AKS: native sidecar', async t => { checkKataPod(t, 'deploy/aks/skr-native-sidecar.yaml', 'native') })
t.test('AKS: classic two-container pod', async t => { checkKataPod(t, 'deploy/aks/skr-classic-sidecar.yaml', 'classic') })

/** Resolves `[parameters('x')]` to the parameter's default (or a marker when it has none). */
function resolveArm (value: string, parameters: Json): string {
  const m = /^\[parameters\('([^']+)'\)\]$/.exec(value)
  if (m === null) return value
  const def = obj(parameters[m[1] as string]).defaultValue
  return typeof def === 'string' ? def : `<parameter ${String(m[1])}>`
}

const arm = JSON.parse(read('deploy/aci/skr-aci.json')) as Json
const armParameters = obj(arm.parameters)

t.test('ACI: ARM template', async t => {
  t.match(arm.$schema, /deploymentTemplate\.json#$/)
  noPrivilege(t, arm, 'skr-aci.json')
  const groups = arr(arm.resources).map(obj).filter(r => r.type === 'Microsoft.ContainerInstance/containerGroups')
  t.equal(groups.length, 1, 'one container group')
  const group = groups[0] as Json
  const props = obj(group.properties)
  t.equal(String(props.sku).toLowerCase(), 'confidential', 'sku Confidential')
  t.type(obj(props.confidentialComputeProperties).ccePolicy, 'string', 'a ccePolicy placeholder for acipolicygen')
  t.equal(obj(group.identity).type, 'UserAssigned')
  t.same(Object.keys(obj(obj(group.identity).userAssignedIdentities)), ["[parameters('userAssignedIdentityId')]"], 'the user-assigned identity comes from a parameter')
  const ports = arr(obj(props.ipAddress).ports).map(p => obj(p).port)
  t.notOk(ports.includes(8080), 'the key release API is not exposed (the reference example published 8080)')

  const containers = arr(props.containers).map(obj)
  const skr = obj(obj(containers.find(c => c.name === 'skr')).properties)
  t.equal(skr.image, "[parameters('skrImage')]")
  checkCommand(t, skr, 'ARM skr')
  const resolved = { env: envOf(skr).map(e => ({ name: e.name, value: resolveArm(e.value, armParameters) })) }
  checkSkrEnv(t, resolved, 'ARM skr')
  checkProbe(t, skr.readinessProbe, 'ARM readinessProbe')
  checkProbe(t, skr.livenessProbe, 'ARM livenessProbe')
  checkApp(t, obj(obj(containers.find(c => c.name === 'app')).properties), 'ARM app')

  // Every parameter used is declared, and every declared one used.
  const text = read('deploy/aci/skr-aci.json')
  const used = new Set([...text.matchAll(/parameters\('([^']+)'\)/g)].map(m => m[1] as string))
  t.same([...used].sort(), Object.keys(armParameters).sort(), 'parameters declared = parameters used')
})

t.test('ACI: Bicep mirrors the ARM template', async t => {
  const lines = read('deploy/aci/skr-aci.bicep').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('//'))
  const has = (re: RegExp, what: string): void => { t.ok(lines.some(l => re.test(l)), what) }
  has(/^resource \w+ 'Microsoft\.ContainerInstance\/containerGroups@\d{4}-\d{2}-\d{2}(-preview)?' = \{$/, 'a containerGroups resource')
  has(/^sku: 'Confidential'$/, "sku: 'Confidential'")
  has(/^ccePolicy: ccePolicy$/, 'ccePolicy from a parameter')
  has(/^type: 'UserAssigned'$/, 'a user-assigned identity')
  has(/^'\$\{userAssignedIdentityId\}': \{\}$/, 'keyed by the identity resource id')
  for (const name of ['SkrSideCarArgs', 'Port', 'LogLevel', 'SKR_URL']) has(new RegExp(`^name: '${name}'$`), `env ${name}`)
  has(/^value: 'http:\/\/localhost:8080'$/, 'the app talks to localhost:8080')
  has(/^value: '8080'$/, 'Port 8080')
  t.equal(lines.filter(l => /^command: healthcheck$/.test(l)).length, 2, 'readiness and liveness exec the healthcheck')
  const healthcheckVar = read('deploy/aci/skr-aci.bicep').match(/var healthcheck = \[([^\]]*)\]/)?.[1] ?? ''
  t.same([...healthcheckVar.matchAll(/'([^']+)'/g)].map(m => m[1]), HEALTHCHECK, 'the same probe command as ARM')
  t.notOk(lines.some(l => /privileged:\s*true|ipAddress/.test(l)), 'nothing privileged, nothing exposed')

  const params = lines.map(l => /^param (\w+) /.exec(l)?.[1]).filter((p): p is string => p !== undefined)
  t.same(params.filter(p => p !== 'ccePolicy').sort(), Object.keys(armParameters).sort(), 'same parameters as the ARM template (plus ccePolicy)')
  const body = lines.filter(l => !l.startsWith('param ') && !l.startsWith('@description'))
  for (const p of params) t.ok(body.some(l => new RegExp(`\\b${p}\\b`).test(l)), `param ${p} is used`)
  const sidecarDefault = /^param skrSideCarArgs string = '([^']+)'$/m.exec(read('deploy/aci/skr-aci.bicep'))?.[1]
  t.equal(sidecarDefault, obj(armParameters.skrSideCarArgs).defaultValue, 'the same SkrSideCarArgs default')
})

t.test('the walk-through covers every example and the decisions', async t => {
  const readme = read('deploy/README.md')
  for (const file of ['aks/skr-native-sidecar.yaml', 'aks/skr-classic-sidecar.yaml', 'aci/skr-aci.json', 'aci/skr-aci.bicep', 'image/skr.sh']) {
    t.ok(readme.includes(file), `mentions ${file}`)
  }
  for (const topic of ['/skr.sh', '--target root', 'acipolicygen', 'katapolicygen', 'x-ms-sevsnpvm-hostdata', 'POST /attest/maa', 'skr/client', 'healthcheck', '["/nodejs/bin/node", "/app/bin/skr.js"]']) {
    t.ok(readme.includes(topic), `covers ${topic}`)
  }
})
