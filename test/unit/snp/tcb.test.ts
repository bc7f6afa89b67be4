import t from 'tap'
import { decodeTcb, encodeTcb, tcbFromHex, tcbPartsEqual, tcbToHex } from '../../../src/snp/tcb.ts'
import type { Generation, TcbParts } from '../../../src/snp/tcb.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

// Build the u64 from its 8 bytes (byte 0 = least significant), independently of tcb.ts.
const fromBytes = (bytes: number[]): bigint => Buffer.from(bytes).readBigUInt64LE(0)

t.test('Milan/Genoa layout: bl, tee, -, -, -, -, snp, ucode', async (t) => {
  for (const g of ['Milan', 'Genoa'] as const) {
    t.same(decodeTcb(0x7308000000000003n, g), { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }, `${g} azure vector TCB`)
    const raw = fromBytes([0x11, 0x22, 0, 0, 0, 0, 0x33, 0x44])
    t.same(decodeTcb(raw, g), { bootloader: 0x11, tee: 0x22, snp: 0x33, microcode: 0x44, fmc: null }, `${g} every byte in place`)
    t.equal(encodeTcb({ bootloader: 0x11, tee: 0x22, snp: 0x33, microcode: 0x44, fmc: null }, g), raw, `${g} encode`)
    t.equal(encodeTcb({ bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }, g), 0x7308000000000003n)
  }
})

t.test('Turin layout: fmc, bl, tee, snp, -, -, -, ucode', async (t) => {
  const raw = fromBytes([0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0x48])
  const parts: TcbParts = { bootloader: 2, tee: 3, snp: 4, microcode: 0x48, fmc: 1 }
  t.same(decodeTcb(raw, 'Turin'), parts)
  t.equal(encodeTcb(parts, 'Turin'), raw)
  t.equal(tcbToHex(raw), '4800000004030201')
  // The same u64 read with the wrong layout gives different levels: the generation matters.
  t.same(decodeTcb(raw, 'Milan'), { bootloader: 1, tee: 2, snp: 0, microcode: 0x48, fmc: null })
})

t.test('reserved bytes are not part of TcbParts; encode writes them as zero', async (t) => {
  const milanWithReserved = fromBytes([3, 0, 0xaa, 0xbb, 0xcc, 0xdd, 8, 0x73])
  const parts = decodeTcb(milanWithReserved, 'Milan')
  t.same(parts, { bootloader: 3, tee: 0, snp: 8, microcode: 0x73, fmc: null })
  t.equal(encodeTcb(parts, 'Milan'), 0x7308000000000003n)
  const turinWithReserved = fromBytes([1, 2, 3, 4, 0xee, 0xee, 0xee, 5])
  t.equal(encodeTcb(decodeTcb(turinWithReserved, 'Turin'), 'Turin'), fromBytes([1, 2, 3, 4, 0, 0, 0, 5]))
})

t.test('round trip over every generation and extreme values', async (t) => {
  const cases: Array<[Generation, TcbParts]> = [
    ['Milan', { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: null }],
    ['Genoa', { bootloader: 255, tee: 255, snp: 255, microcode: 255, fmc: null }],
    ['Turin', { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 }],
    ['Turin', { bootloader: 255, tee: 254, snp: 253, microcode: 252, fmc: 251 }]
  ]
  for (const [g, parts] of cases) t.same(decodeTcb(encodeTcb(parts, g), g), parts, `${g} ${JSON.stringify(parts)}`)
})

t.test('misuse is a TypeError', async (t) => {
  const milan: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }
  t.throws(() => encodeTcb({ ...milan, fmc: 1 }, 'Milan'), { name: 'TypeError', message: 'Milan TCB has no FMC part, but fmc is 1' })
  t.throws(() => encodeTcb(milan, 'Turin'), { name: 'TypeError', message: 'Turin TCB needs an FMC part, but fmc is null' })
  t.throws(() => encodeTcb({ ...milan, snp: 256 }, 'Milan'), { name: 'TypeError', message: 'TCB part snp must be an integer in 0..255' })
  t.throws(() => encodeTcb({ ...milan, tee: -1 }, 'Genoa'), { name: 'TypeError', message: 'TCB part tee must be an integer in 0..255' })
  t.throws(() => encodeTcb({ ...milan, microcode: 1.5 }, 'Milan'), { name: 'TypeError' })
  t.throws(() => encodeTcb({ ...milan, fmc: 300 }, 'Turin'), { name: 'TypeError', message: 'TCB part fmc must be an integer in 0..255' })
  t.throws(() => encodeTcb(milan, 'Venice' as Generation), { name: 'TypeError', message: 'unknown CPU generation "Venice", want Milan, Genoa or Turin' })
  t.throws(() => decodeTcb(1n, 'milan' as Generation), { name: 'TypeError' })
  t.throws(() => decodeTcb(-1n, 'Milan'), { name: 'TypeError', message: 'raw TCB must be a bigint in 0..2^64-1' })
  t.throws(() => decodeTcb(1n << 64n, 'Milan'), { name: 'TypeError' })
  t.throws(() => decodeTcb(3 as unknown as bigint, 'Milan'), { name: 'TypeError' })
})

t.test('tcbToHex: 16 upper-case digits, most significant first (THIM tcbm)', async (t) => {
  t.equal(tcbToHex(0x7308000000000003n), '7308000000000003')
  t.equal(tcbToHex(0n), '0000000000000000')
  t.equal(tcbToHex(0xabcdefn), '0000000000ABCDEF')
  t.equal(tcbToHex((1n << 64n) - 1n), 'FFFFFFFFFFFFFFFF')
  t.throws(() => tcbToHex(-1n), { name: 'TypeError' })
  t.throws(() => tcbToHex(1n << 64n), { name: 'TypeError' })
})

t.test('tcbFromHex: exactly 16 hex digits of any case, else null', async (t) => {
  t.equal(tcbFromHex('7308000000000003'), 0x7308000000000003n)
  t.equal(tcbFromHex('00000000000abcdE'), 0xabcden)
  t.equal(tcbFromHex('FFFFFFFFFFFFFFFF'), (1n << 64n) - 1n)
  for (const bad of ['', '730800000000003', '73080000000000031', '0x73080000000003', '730800000000000g',
    ' 7308000000000003', '7308000000000003\n', '+308000000000003', '-308000000000003', '7308 00000000003']) {
    t.equal(tcbFromHex(bad), null, JSON.stringify(bad))
  }
  t.equal(tcbFromHex(7308000000000003 as unknown as string), null, 'a JSON number is not a tcbm')
  t.equal(tcbFromHex(null as unknown as string), null)
  for (const raw of [0n, 1n, 0x7308000000000003n, 0x4800000004030201n]) t.equal(tcbFromHex(tcbToHex(raw)), raw)
})

t.test('tcbPartsEqual compares every part, fmc included', async (t) => {
  const a: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }
  t.ok(tcbPartsEqual(a, { ...a }))
  t.notOk(tcbPartsEqual(a, { ...a, bootloader: 4 }))
  t.notOk(tcbPartsEqual(a, { ...a, tee: 1 }))
  t.notOk(tcbPartsEqual(a, { ...a, snp: 9 }))
  t.notOk(tcbPartsEqual(a, { ...a, microcode: 116 }))
  t.notOk(tcbPartsEqual(a, { ...a, fmc: 0 }), 'null fmc differs from fmc 0')
  t.ok(tcbPartsEqual({ ...a, fmc: 2 }, { ...a, fmc: 2 }))
  t.notOk(tcbPartsEqual({ ...a, fmc: 2 }, { ...a, fmc: 3 }))
})

t.test('genuine THIM tcbm equals the genuine report REPORTED_TCB', needsVectors(), async (t) => {
  const thim: unknown = JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json'))
  const tcbm = (thim as { tcbm?: unknown }).tcbm
  t.equal(tcbm, '7308000000000003')
  const report = parseReport(vector('azure-aci-milan', 'snp_report.bin'))
  t.equal(tcbFromHex(tcbm as string), report.reportedTcb)
  t.equal(tcbToHex(report.reportedTcb), tcbm)
})
