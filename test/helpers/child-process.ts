// Child processes for tests (and the benchmark): each one is started in a process group of its own
// (`detached: true`, so its pgid is its pid) and killed as a group, with SIGKILL, when its owner's
// t.teardown runs, and again from an exit handler of this process should it end first. tap ends a
// test file that overruns its timeout with SIGALRM, then SIGKILL: the signal-exit handler runs on
// the SIGALRM (a plain process.on('exit') does not run when a signal ends a process), so no
// `skr serve` or `skr emulate` a test started outlives it, whatever happens to the test.
//
// runChild is the asynchronous spawnSync of the tests: a blocked event loop could handle neither
// tap's timeout nor a teardown, so no test waits for a child with spawnSync.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readFile, readdir, readlink } from 'node:fs/promises'
import { onExit } from 'signal-exit'

/** Something that runs cleanup when it ends: a tap Test, or null for "this process only". */
export interface Owner {
  teardown: (fn: () => void | Promise<void>) => void
}

/** How a child process ended. */
export interface Exit { code: number | null, signal: NodeJS.Signals | null }

const live = new Set<ChildProcess>()
const closed = new WeakMap<ChildProcess, Promise<Exit>>()
let hooked = false

/** SIGKILL (or `signal`) to the child's whole process group; false when there was none left. */
export function killGroup (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  const pid = child.pid
  if (pid === undefined) return false
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    // ESRCH: the group is gone (the leader exited and took nothing with it)
    return false
  }
}

function killAll (): void {
  for (const child of live) killGroup(child)
  live.clear()
}

function hook (): void {
  if (hooked) return
  hooked = true
  process.once('exit', killAll)
  onExit(() => { killAll() })
}

/**
 * spawn() in a new process group, tracked until its group is killed: at `owner`'s teardown (SIGKILL
 * to the group, after the child's own exit too, for anything it left behind), and at this process's
 * exit or fatal signal. Options are spawn()'s; `detached` is always true.
 */
export function spawnTracked (owner: Owner | null, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  hook()
  const child = spawn(command, args, { ...options, detached: true })
  closed.set(child, new Promise<Exit>(resolve => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => { resolve({ code, signal }) })
  }))
  if (child.pid === undefined) return child // spawn failed: the 'error' event says why
  live.add(child)
  owner?.teardown(() => {
    killGroup(child)
    live.delete(child)
  })
  return child
}

/** Settles with how a child of spawnTracked ended, once its stdout and stderr are read to the end too. */
export async function exited (child: ChildProcess): Promise<Exit> {
  const ended = closed.get(child)
  if (ended === undefined) throw new TypeError('exited: not a child of spawnTracked')
  return await ended
}

/** `signal` to the group, SIGKILL to the group after `graceMs`; resolves with how the child ended. */
export async function stopGroup (child: ChildProcess, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
  const ended = exited(child)
  if (child.exitCode === null && child.signalCode === null) killGroup(child, signal)
  const timer = setTimeout(() => { killGroup(child) }, graceMs)
  try {
    return await ended
  } finally {
    clearTimeout(timer)
    live.delete(child)
  }
}

/** What runChild returns: spawnSync's fields, with the output as text. */
export interface RunResult {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Set when the command could not be started (ENOENT...). */
  error?: Error
}

/** Options of runChild. */
export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Written to stdin, which is then closed (default: stdin is /dev/null). */
  input?: string
  /** SIGKILL to the group after this long (default 120 s): a bound, never asserted on. */
  timeoutMs?: number
}

/** Runs a command to completion, like spawnSync but without blocking this process's event loop. */
export async function runChild (owner: Owner | null, command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawnTracked(owner, command, args, {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
  })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout?.on('data', (c: Buffer) => { out.push(c) })
  child.stderr?.on('data', (c: Buffer) => { err.push(c) })
  if (options.input !== undefined) {
    child.stdin?.on('error', () => {}) // EPIPE when the command does not read it all
    child.stdin?.end(options.input)
  }
  const timer = setTimeout(() => { killGroup(child) }, options.timeoutMs ?? 120_000)
  try {
    return await new Promise<RunResult>(resolve => {
      child.once('error', (error) => {
        resolve({ status: null, signal: null, stdout: '', stderr: '', error })
      })
      // 'close': the exit and the end of stdout and stderr.
      child.once('close', (status: number | null, signal: NodeJS.Signals | null) => {
        resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })
      })
    })
  } finally {
    clearTimeout(timer)
    // Anything it started and left running goes with it.
    killGroup(child)
    live.delete(child)
  }
}

/**
 * The TCP ports process `pid` is listening on (Linux: its socket inodes matched against
 * /proc/<pid>/net/tcp and tcp6, state 0A LISTEN); empty when it has none yet or is gone. How a test
 * reads back the port a child chose with port 0.
 */
export async function listeningPorts (pid: number): Promise<number[]> {
  const inodes = new Set<string>()
  let fds: string[]
  try {
    fds = await readdir(`/proc/${pid}/fd`)
  } catch {
    return []
  }
  await Promise.all(fds.map(async fd => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`))
      if (m?.[1] !== undefined) inodes.add(m[1])
    } catch {
      // closed meanwhile
    }
  }))
  const ports = new Set<number>()
  for (const table of ['tcp', 'tcp6']) {
    let text: string
    try {
      text = await readFile(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/)
      const local = f[1]
      if (f[3] !== '0A' || f[9] === undefined || !inodes.has(f[9]) || local === undefined) continue
      const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16)
      if (Number.isInteger(port) && port > 0) ports.add(port)
    }
  }
  return [...ports].sort((a, b) => a - b)
}
