// SHA-256 fingerprints of AMD's SEV-SNP roots (ARK) and intermediates (ASK for VCEKs, ASVK for
// VLEKs), as X509Certificate.fingerprint256 prints them: docs/sev-snp.md#amd-certificate-chain, computed with
// openssl over the certificates KDS serves at https://kdsintf.amd.com/{vcek|vlek}/v1/<P>/cert_chain
// (the same bytes as google/go-sev-guest verify/trust/*.pem and virtee/sev
// src/certs/snp/builtin/). The Milan and Turin entries are re-checked by the chain tests against
// the genuine vectors. A chain is trusted only if its ARK is pinned here
// (or added by configuration): go-sev-guest's default path does not pin (docs/sev-snp.md#verifying-a-report), we do.
import type { Generation } from '../snp/tcb.ts'

/** The ARK (AMD Root Key, self-signed, RSA-4096) of each generation. */
export const AMD_ARK_FINGERPRINTS: Readonly<Record<Generation, string>> = Object.freeze({
  Milan: '69:D0:63:B4:53:44:D2:6A:2E:94:E1:F4:21:0D:E4:9E:F5:55:30:82:87:D4:C1:74:44:5C:95:63:9A:54:0B:CD',
  Genoa: '4C:65:98:D1:9C:18:71:9C:5D:FD:4A:7D:33:5F:67:4E:5B:FE:1D:8F:80:0C:EA:2C:F2:70:C1:0D:10:3D:B2:F1',
  Turin: '1F:08:41:61:A4:4B:B6:D9:37:78:A9:04:87:7D:48:19:CA:FA:5D:05:EF:41:93:B2:DE:D9:DD:9C:73:DD:3F:6A'
})

/** The ASK (CN SEV-<Product>, signs VCEKs) of each generation. */
export const AMD_ASK_FINGERPRINTS: Readonly<Record<Generation, string>> = Object.freeze({
  Milan: '67:D3:03:BD:39:05:FD:38:DB:8B:20:E0:79:36:99:87:0E:7F:A6:12:EA:AD:5D:EC:35:82:93:FD:8C:0B:AC:1B',
  Genoa: '54:64:73:8C:15:46:AE:D5:F2:CE:CF:1D:C9:8C:5C:96:0A:92:E8:91:32:38:A6:17:11:BC:90:EC:6E:82:85:21',
  Turin: '5B:77:EF:5F:E7:A7:A0:04:FD:90:32:66:8F:BA:9D:0F:DA:22:F8:8C:44:42:06:9A:47:96:36:A6:AE:3B:31:85'
})

/** The ASVK (CN SEV-VLEK-<Product>, signs VLEKs) of each generation. */
export const AMD_ASVK_FINGERPRINTS: Readonly<Record<Generation, string>> = Object.freeze({
  Milan: 'C5:E0:81:F5:9B:7E:FA:B1:FE:2F:8B:50:5E:15:97:04:E7:2F:29:CA:B7:EF:7C:F6:28:A0:5A:42:43:90:82:F5',
  Genoa: '19:7E:61:07:43:A9:17:D6:B9:BB:98:2A:5A:92:26:CC:C0:A1:5B:61:1B:E0:61:9E:62:6A:CA:91:51:45:73:72',
  Turin: '10:4E:10:A8:BD:06:0A:3C:20:A4:34:26:1A:57:D0:58:8F:D6:5A:88:91:5B:4F:65:B0:8B:DE:CA:F8:DF:1A:3C'
})
