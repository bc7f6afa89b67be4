// The filesystem side of the configfs-tsm backend (docs/sev-snp.md#configfs-tsm): the calls it
// makes, and their production form over node:fs/promises.
import * as fsp from 'node:fs/promises'

/** The filesystem calls the backend makes: node:fs/promises by default, a fake configfs in tests. */
export interface TsmFs {
  mkdir (path: string): Promise<void>
  rmdir (path: string): Promise<void>
  readFile (path: string): Promise<Buffer>
  writeFile (path: string, data: Uint8Array | string): Promise<void>
  access (path: string): Promise<void>
}

const READ_CHUNK = 64 * 1024

// configfs attributes may stat with a size unrelated to their content (0 or 4096), and Node's
// readFile trusts a non-zero size, so read until EOF as go's os.ReadFile does.
async function readToEnd (path: string): Promise<Buffer> {
  const handle = await fsp.open(path, 'r')
  try {
    const chunks: Buffer[] = []
    for (;;) {
      const chunk = Buffer.alloc(READ_CHUNK)
      const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK, null)
      if (bytesRead === 0) return Buffer.concat(chunks)
      chunks.push(chunk.subarray(0, bytesRead))
    }
  } finally {
    await handle.close()
  }
}

/** The production TsmFs: node:fs/promises, reading every attribute to EOF. */
export const nodeTsmFs: TsmFs = Object.freeze<TsmFs>({
  mkdir: async (path) => { await fsp.mkdir(path) },
  rmdir: async (path) => { await fsp.rmdir(path) },
  readFile: readToEnd,
  writeFile: async (path, data) => { await fsp.writeFile(path, data) },
  access: async (path) => { await fsp.access(path) }
})
