// Genuine SEV-SNP test vectors (data published by their owners under MIT/Apache-2.0), committed
// in test/fixtures/vectors with each file's provenance in that folder's README. SKR_VECTORS_DIR
// overrides the folder (it must have the same layout). needsVectors()/haveVectors() remain for the
// callers: with the committed folder they never skip; they skip, saying why, only when an
// override points at a folder without the vectors.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const vectorsDir = process.env.SKR_VECTORS_DIR ?? resolve(repoRoot, 'test', 'fixtures', 'vectors')

export const vectorsAbsentReason =
  `genuine SEV-SNP vectors not found at ${vectorsDir} (they are committed under test/fixtures/vectors; if SKR_VECTORS_DIR is set, it must point at a folder with the same layout)`

export function haveVectors (): boolean {
  return existsSync(join(vectorsDir, 'azure-aci-milan', 'snp_report.bin'))
}

/** Options for t.test(): skips the subtest, loudly, when the vectors are absent. */
export function needsVectors (): { skip: string | false } {
  return { skip: haveVectors() ? false : vectorsAbsentReason }
}

export function vector (...parts: string[]): Buffer {
  return readFileSync(join(vectorsDir, ...parts))
}

export function vectorText (...parts: string[]): string {
  return readFileSync(join(vectorsDir, ...parts), 'utf8')
}
