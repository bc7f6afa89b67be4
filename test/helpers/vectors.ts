// Genuine SEV-SNP vectors from ../shared/vectors, beside the project (published by their owners
// under MIT/Apache-2.0); tests that need them call vectorsOrSkip(). Vectors the project carries
// itself, with their provenance, are in test/fixtures/vectors (see its README).
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const vectorsDir = process.env.SKR_VECTORS_DIR ?? resolve(repoRoot, '..', 'shared', 'vectors')

export const vectorsAbsentReason =
  `genuine SEV-SNP vectors not found at ${vectorsDir} (they live in ../shared/vectors beside the repo and are not committed; set SKR_VECTORS_DIR to point elsewhere)`

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
