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
import { loadConfig } from '../../../src/config/config.ts'

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

// The Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
// the controls of the "baseline" and "restricted" profiles that a pod spec can break, checked as
// the PodSecurity admission controller checks them: a pod-level setting counts for every container
// that does not override it.
const BASELINE_CAPABILITIES = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'])
const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'])

function podSecurityViolations (spec: Json): { baseline: string[], restricted: string[] } {
  const baseline: string[] = []
  const restricted: string[] = []
  const pod = obj(spec.securityContext)
  const containers = [...arr(spec.initContainers), ...arr(spec.containers), ...arr(spec.ephemeralContainers)].map(obj)
  for (const key of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[key] === true) baseline.push(key)
  for (const v of arr(spec.volumes).map(obj)) {
    if (v.hostPath !== undefined) baseline.push(`hostPath volume "${String(v.name)}"`)
    const type = Object.keys(v).find(k => k !== 'name')
    if (type !== undefined && type !== 'hostPath' && !RESTRICTED_VOLUMES.has(type)) restricted.push(`${type} volume "${String(v.name)}"`)
  }
  const podSeccomp = obj(pod.seccompProfile).type
  if (podSeccomp === 'Unconfined') baseline.push('pod seccompProfile Unconfined')
  if (pod.runAsUser === 0) restricted.push('pod runAsUser 0')
  if (arr(obj(pod).sysctls).length > 0) baseline.push('pod sysctls (check each is safe)')
  for (const c of containers) {
    const name = String(c.name)
    const sc = obj(c.securityContext)
    if (sc.privileged === true) baseline.push(`${name}: privileged`)
    if (sc.procMount !== undefined && sc.procMount !== 'Default') baseline.push(`${name}: procMount`)
    for (const add of arr(obj(sc.capabilities).add).map(String)) {
      if (!BASELINE_CAPABILITIES.has(add)) baseline.push(`${name}: adds capability ${add}`)
      if (add !== 'NET_BIND_SERVICE') restricted.push(`${name}: adds capability ${add}`)
    }
    if (arr(c.ports).some(p => obj(p).hostPort !== undefined && obj(p).hostPort !== 0)) baseline.push(`${name}: hostPort`)
    const seccomp = obj(sc.seccompProfile).type ?? podSeccomp
    if (seccomp === 'Unconfined') baseline.push(`${name}: seccompProfile Unconfined`)
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') restricted.push(`${name}: seccompProfile RuntimeDefault or Localhost`)
    if (sc.allowPrivilegeEscalation !== false) restricted.push(`${name}: allowPrivilegeEscalation false`)
    if (!arr(obj(sc.capabilities).drop).includes('ALL')) restricted.push(`${name}: capabilities drop ALL`)
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) restricted.push(`${name}: runAsNonRoot`)
    if (sc.runAsUser === 0) restricted.push(`${name}: runAsUser 0`)
  }
  return { baseline, restricted: [...baseline, ...restricted] }
}

t.test('Pod Security: "restricted", but for the hostPath volume the Kata CC pattern needs', async t => {
  t.same(podSecurityViolations({ containers: [{ name: 'c' }], volumes: [{ name: 'h', hostPath: { path: '/x' } }] }).restricted, [
    'hostPath volume "h"', 'c: seccompProfile RuntimeDefault or Localhost', 'c: allowPrivilegeEscalation false', 'c: capabilities drop ALL', 'c: runAsNonRoot'
  ], 'the checker finds what the profile forbids')
  for (const path of ['deploy/aks/skr-native-sidecar.yaml', 'deploy/aks/skr-classic-sidecar.yaml']) {
    const workload = parseYaml(path).find(d => d.kind === 'Pod' || d.kind === 'Deployment') ?? {}
    const { spec } = podSpec(workload)
    const found = podSecurityViolations(spec)
    t.same(found.restricted, ['hostPath volume "endorsement-location"'], `${path}: only the documented exception`)
    t.same(found.baseline, found.restricted, `${path}: which "baseline" forbids too (deploy/README.md says so)`)
    t.equal(obj(obj(spec.securityContext).seccompProfile).type, 'RuntimeDefault', `${path}: seccompProfile RuntimeDefault for the pod`)
    const volume = obj(arr(spec.volumes).map(obj).find(v => v.name === 'endorsement-location')?.hostPath)
    t.equal(volume.type, 'File', `${path}: the hostPath is type File (no directory is made in its place)`)
    for (const c of [...arr(spec.initContainers), ...arr(spec.containers)].map(obj)) {
      const resources = obj(c.resources)
      t.ok(obj(resources.requests).cpu !== undefined && obj(resources.requests).memory !== undefined, `${path} ${String(c.name)}: cpu and memory requests`)
      t.ok(obj(resources.limits).memory !== undefined, `${path} ${String(c.name)}: a memory limit`)
      t.ok(c.securityContext !== undefined, `${path} ${String(c.name)}: its own securityContext`)
    }
  }
})

t.test('metrics: the listener, the annotations and the PodMonitor agree', async t => {
  const podLabels: Json[] = []
  for (const [path, mode] of [['deploy/aks/skr-native-sidecar.yaml', 'native'], ['deploy/aks/skr-classic-sidecar.yaml', 'classic']] as const) {
    const workload = parseYaml(path).find(d => d.kind === 'Pod' || d.kind === 'Deployment') ?? {}
    const { spec, labels } = podSpec(workload)
    podLabels.push(labels)
    const annotations = obj(workload.kind === 'Pod' ? obj(workload.metadata).annotations : obj(obj(obj(workload.spec).template).metadata).annotations)
    const skr = obj((mode === 'native' ? arr(spec.initContainers) : arr(spec.containers)).find(c => obj(c).name === 'skr'))
    const config = loadConfig([], envMap(skr))
    const metricsPort = config.metricsListener?.port
    t.ok(metricsPort !== undefined && metricsPort !== 8080, `${path}: SKR_METRICS_PORT is set, apart from the API's port`)
    t.equal(config.metricsListener?.host, '0.0.0.0', `${path}: on the pod IP`)
    t.equal(config.host, 'localhost', `${path}: the key API stays on loopback`)
    const port = obj(arr(skr.ports).find(p => obj(p).name === 'metrics'))
    t.equal(port.containerPort, metricsPort, `${path}: the container port named metrics is SKR_METRICS_PORT`)
    t.notOk(arr(skr.ports).some(p => obj(p).containerPort === 8080), `${path}: 8080 is not declared`)
    t.same([annotations['prometheus.io/scrape'], annotations['prometheus.io/port'], annotations['prometheus.io/path']], ['true', String(metricsPort), '/metrics'], `${path}: prometheus.io annotations`)
  }
  const monitor = parseYaml('deploy/aks/skr-podmonitor.yaml')[0] ?? {}
  t.equal(monitor.kind, 'PodMonitor')
  t.match(monitor.apiVersion, /^(azmonitoring|monitoring)\.coreos\.com\/v1$/, 'Azure Managed Prometheus (or Prometheus Operator) API group')
  const selector = obj(obj(obj(monitor.spec).selector).matchLabels)
  for (const labels of podLabels) for (const [k, v] of Object.entries(selector)) t.equal(labels[k], v, `the PodMonitor selects the pods (${k})`)
  t.same(arr(obj(monitor.spec).podMetricsEndpoints).map(e => [obj(e).port, obj(e).path]), [['metrics', '/metrics']], 'by the port name, at /metrics')
})

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
  // No Pod Security admission in ACI; allowPrivilegeEscalation is what carries over (acipolicygen
  // writes it into the policy as no_new_privileges). Why not the rest: deploy/README.md.
  for (const c of containers) t.equal(obj(obj(c.properties).securityContext).allowPrivilegeEscalation, false, `ARM ${String(c.name)}: allowPrivilegeEscalation false`)

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
  t.equal(lines.filter(l => /^allowPrivilegeEscalation: false$/.test(l)).length, 2, 'allowPrivilegeEscalation false on both containers, as ARM')

  const params = lines.map(l => /^param (\w+) /.exec(l)?.[1]).filter((p): p is string => p !== undefined)
  t.same(params.filter(p => p !== 'ccePolicy').sort(), Object.keys(armParameters).sort(), 'same parameters as the ARM template (plus ccePolicy)')
  const body = lines.filter(l => !l.startsWith('param ') && !l.startsWith('@description'))
  for (const p of params) t.ok(body.some(l => new RegExp(`\\b${p}\\b`).test(l)), `param ${p} is used`)
  const sidecarDefault = /^param skrSideCarArgs string = '([^']+)'$/m.exec(read('deploy/aci/skr-aci.bicep'))?.[1]
  t.equal(sidecarDefault, obj(armParameters.skrSideCarArgs).defaultValue, 'the same SkrSideCarArgs default')
})

t.test('the walk-through covers every example and the decisions', async t => {
  const readme = read('deploy/README.md')
  for (const file of ['aks/skr-native-sidecar.yaml', 'aks/skr-classic-sidecar.yaml', 'aks/skr-podmonitor.yaml', 'aci/skr-aci.json', 'aci/skr-aci.bicep', 'image/skr.sh']) {
    t.ok(readme.includes(file), `mentions ${file}`)
  }
  for (const topic of ['/skr.sh', '--target root', 'acipolicygen', 'katapolicygen', 'x-ms-sevsnpvm-hostdata', 'POST /attest/maa', 'skr-sidecar-client', 'healthcheck', '["/nodejs/bin/node", "/app/bin/skr.js"]', 'SKR_METRICS_PORT', 'prometheus.io/scrape', 'restricted', 'hostPath', 'seccompProfile']) {
    t.ok(readme.includes(topic), `covers ${topic}`)
  }
})
