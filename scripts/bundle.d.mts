// Types of scripts/bundle.mjs, for the TypeScript that imports it (bench/compile.ts).
import type { Metafile } from 'esbuild'

export declare const VENDOR_ASSETS: Readonly<Record<string, readonly string[]>>

export interface BundleSummary {
  outdir: string
  files: number
  bytes: number
  packages: number
  ms: number
  metafile: Metafile
}

/** The Azure SDK's `typeof FormData` checks, guarded so that only a FormData-tagged value reads the global. */
export declare function guardFormDataChecks (text: string): string

export declare function bundle (options?: { outdir?: string }): Promise<BundleSummary>
