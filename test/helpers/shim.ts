// Builds the LD_PRELOAD SEV-SNP driver stand-in (test/shim/sev_guest_shim.c) and a tiny C
// probe that drives it directly, once per test process, into a temp dir. Missing tools (no cc,
// no OpenSSL headers) become a skip reason; any other compiler error fails the test, because
// it means the shim itself is broken.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { repoRoot } from './vectors.ts'

/** Paths of the built shim and probe, or why they could not be built here. */
export type ShimBuild =
  | { readonly ok: true, readonly shim: string, readonly probe: string, readonly dir: string }
  | { readonly ok: false, readonly skip: string }

export const shimSource = join(repoRoot, 'test', 'shim', 'sev_guest_shim.c')
export const addonPath = join(repoRoot, 'build', 'Release', 'snp_guest.node')

// Exercises the driver paths the addon never takes on purpose (bad msg_version, NULL buffers,
// unknown ioctl numbers, the exitinfo2 copy-back rule) and prints one JSON object.
const PROBE_SOURCE = String.raw`
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "sev_guest_abi.h"

static uint8_t resp[SNP_REPORT_RESP_SIZE];

static void call(const char *name, int fd, unsigned long nr, uint8_t version, int null_req, int last) {
  struct snp_report_req req;
  memset(&req, 0, sizeof(req));
  struct snp_guest_request_ioctl io;
  memset(&io, 0, sizeof(io));
  io.msg_version = version;
  io.req_data = null_req ? 0 : (uint64_t)(uintptr_t)&req;
  io.resp_data = (uint64_t)(uintptr_t)resp;
  io.exitinfo2 = 0xdeadULL; /* a sentinel: shows whether the driver copied the struct back */
  errno = 0;
  int rc = ioctl(fd, nr, &io);
  printf("\"%s\":{\"rc\":%d,\"errno\":%d,\"exitinfo2\":\"0x%" PRIx64 "\"}%s", name, rc, rc ? errno : 0, io.exitinfo2, last ? "" : ",");
}

int main(void) {
  int fd = open("/dev/sev-guest", O_RDWR | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/sev-guest"); return 1; }
  printf("{");
  call("msgVersion0", fd, SNP_GET_REPORT, 0, 0, 0);
  call("nullRequest", fd, SNP_GET_REPORT, 1, 1, 0);
  call("derivedKey", fd, SNP_GET_DERIVED_KEY, 1, 0, 0);
  call("legacyNumberOnGuest", fd, SEV_SNP_GUEST_MSG_REPORT, 1, 0, 0);
  call("ok", fd, SNP_GET_REPORT, 1, 0, 1);
  printf(",\"status\":%u,\"reportSize\":%u}\n", resp[0] | resp[1] << 8, resp[4] | resp[5] << 8);
  close(fd);
  return 0;
}
`

let cached: ShimBuild | undefined

function cc (args: string[]): { ok: true } | { ok: false, missing: boolean, message: string } {
  const r = spawnSync('cc', args, { encoding: 'utf8' })
  if (r.error !== undefined) {
    return { ok: false, missing: true, message: `cc could not run (${r.error.message})` }
  }
  if (r.status === 0) return { ok: true }
  const message = `${r.stderr}${r.stdout}`.trim()
  const missingHeaders = /openssl\/[a-z_]+\.h: No such file/.test(message) || /cannot find -lcrypto/.test(message)
  return { ok: false, missing: missingHeaders, message }
}

/** Compiles the shim and the probe (once per process); throws when the shim does not compile. */
export function buildShim (): ShimBuild {
  if (cached !== undefined) return cached
  if (process.platform !== 'linux') {
    cached = { ok: false, skip: 'the LD_PRELOAD shim needs Linux' }
    return cached
  }
  const dir = mkdtempSync(join(tmpdir(), 'skr-shim-'))
  process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
  const shim = join(dir, 'shim.so')
  const built = cc(['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-Werror', '-o', shim, shimSource, '-ldl', '-lcrypto'])
  if (!built.ok) {
    if (built.missing) {
      cached = { ok: false, skip: `cannot build the SEV-SNP shim (needs cc and the OpenSSL headers, libssl-dev): ${built.message}` }
      return cached
    }
    throw new Error(`test/shim/sev_guest_shim.c does not compile:\n${built.message}`)
  }
  const probeSource = join(dir, 'probe.c')
  writeFileSync(probeSource, PROBE_SOURCE)
  const probe = join(dir, 'probe')
  const probeBuilt = cc(['-O1', '-Wall', '-Wextra', '-Werror', '-I', join(repoRoot, 'native'), '-o', probe, probeSource])
  if (!probeBuilt.ok) throw new Error(`the shim probe does not compile:\n${probeBuilt.message}`)
  cached = { ok: true, shim, probe, dir }
  return cached
}
