// The public keys of Microsoft's signing transparency service for UVM endorsements
// (issuer esrp-cts-db.confidential-ledger.azure.com), so `skr verify` can check a genuine ACI
// endorsement's receipt offline. Source: the service trust store microsoft/scitt-ccf-ledger keeps
// as test data (test/transparent_statements/esrp-cts-db.json at 5860db8, MIT), whose eight service
// certificates (April 2025 to April 2026) carry these two P-384 keys; the genuine receipt in
// test/fixtures/vectors/scitt-ccf-ledger verifies under the second. The service rotates its key:
// a receipt under a newer one is reported as 'unknown-key' until the operator passes the service's
// current keys (`--transparency-keys`, e.g. the JSON of https://<issuer>/jwks).
export const MICROSOFT_TRANSPARENCY_ISSUER = 'esrp-cts-db.confidential-ledger.azure.com'

/** SubjectPublicKeyInfo DER, base64, of each pinned key. */
export const MICROSOFT_TRANSPARENCY_SPKIS: readonly string[] = [
  // kid 23d48c280f71abf575c81e89f18a4dc9f3b33d8a3b149b16ad836c8553f95bc0 (certificates 2025-04-04 to 2025-10-31)
  'MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE2GIJv9nAhste7hDWrpea1+hd/BAPXg4ZIxLy4C4hAX2eCpqT4siLqohA2KIVJti8aTT6XYHZPBgdI4RLFo2BaP1RVuOG2rFg5JBhYvt871HIwmtzNtwXl3/NBwfcqr8O',
  // kid da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849 (certificates 2025-09-18 to 2026-04-15)
  'MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEGeQ/qA3ZxYoaan3D0nA7xriMcmiMqQ0UNY1DLs7C5kIEaI/RL/2duRcG1Ii6g+8+uKiRr4UU8aXumcA8wu6LOatH0qL2AjFy3/8iBx3mbt1foS5xNHlXchMMLTSCvRLn'
]
