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

export declare function bundle (options?: { outdir?: string }): Promise<BundleSummary>
