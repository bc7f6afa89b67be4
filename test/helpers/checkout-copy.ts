// A copy of this checkout's tracked files in a temp directory, with node_modules linked in, for
// tests that must build or pack (`npm pack` runs prepack, which writes dist/): doing that in the
// checkout itself would change dist/ under other test files running at the same time (bin/skr.js
// runs dist/ when it exists).
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { repoRoot } from './vectors.ts'

/** A temp copy of the tracked (and untracked, not ignored) files; remove() deletes it. */
export interface CheckoutCopy {
  readonly root: string
  remove (): void
}

/** Copies the checkout (git's file list: tracked plus untracked-not-ignored) and links node_modules. */
export function copyCheckout (prefix = 'skr-checkout-'): CheckoutCopy {
  const root = join(realpathSync(mkdtempSync(join(tmpdir(), prefix))), 'repo')
  const listed = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  for (const file of listed.stdout.split('\0').filter(f => f !== '')) {
    mkdirSync(dirname(join(root, file)), { recursive: true })
    try {
      cpSync(join(repoRoot, file), join(root, file))
    } catch (err) {
      // A file git lists but that was deleted in the working tree (an unstaged removal).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'), 'dir')
  return { root, remove: () => { rmSync(dirname(root), { recursive: true, force: true }) } }
}
