// The two things skr reads from a certificate that node:crypto's X509Certificate does not expose
// as data: the subject's CN values and the raw extensions (OID, extnValue bytes). Read straight from
// the DER (./der.ts), walking only the TBSCertificate fields needed (RFC 5280 §4.1). A full X.509
// library (@peculiar/x509, with reflect-metadata and tsyringe) costs tens of milliseconds and
// several MB to load, which `skr serve` would pay before answering its first /status; only the
// emulated chain's generator still uses it, and loads it when it runs.
import { childrenOf, DerError, isUniversal, oidValue, readOnly, stringValue, TAG, type DerElement } from './der.ts'

/** One certificate extension: its OID, critical flag and extnValue (the OCTET STRING's content). */
export interface CertExtension {
  oid: string
  critical: boolean
  value: Uint8Array
}

/** The fields read. */
export interface CertFields {
  /** Every CN attribute value of the subject, in order (usually one). */
  subjectCommonNames: string[]
  extensions: CertExtension[]
}

const CN = '2.5.4.3'
const CONTEXT = 2

function fail (what: string): DerError {
  return new DerError(`not an X.509 certificate: ${what}`)
}

function sequence (element: DerElement | undefined, what: string, tagNumber: number = TAG.SEQUENCE): DerElement[] {
  if (!isUniversal(element, tagNumber) || !element.constructed) throw fail(`${what} is not a ${tagNumber === TAG.SET ? 'SET' : 'SEQUENCE'}`)
  return childrenOf(element)
}

function isContext (element: DerElement | undefined, tagNumber: number): element is DerElement {
  return element !== undefined && element.tagClass === CONTEXT && element.constructed && element.tagNumber === tagNumber
}

function commonNames (name: DerElement | undefined): string[] {
  const out: string[] = []
  for (const rdn of sequence(name, 'subject')) {
    for (const attribute of sequence(rdn, 'subject RDN', TAG.SET)) {
      const [type, value] = sequence(attribute, 'subject attribute')
      if (!isUniversal(type, TAG.OID) || value === undefined) throw fail('subject attribute is not an OID and a value')
      if (oidValue(type) !== CN) continue
      const text = stringValue(value)
      if (text === null) throw fail('subject CN is not a string')
      out.push(text)
    }
  }
  return out
}

function extensionsOf (tagged: DerElement): CertExtension[] {
  const [list, ...rest] = childrenOf(tagged)
  if (rest.length > 0) throw fail('extensions [3] holds more than one element')
  return sequence(list, 'extensions').map((ext) => {
    const parts = sequence(ext, 'extension')
    const [oid, second] = parts
    if (!isUniversal(oid, TAG.OID)) throw fail('extension OID missing')
    const hasCritical = isUniversal(second, TAG.BOOLEAN)
    const octets = hasCritical ? parts[2] : second
    if (!isUniversal(octets, TAG.OCTET_STRING) || octets.constructed || parts.length !== (hasCritical ? 3 : 2)) {
      throw fail(`extension ${oidValue(oid)} has no extnValue OCTET STRING`)
    }
    return { oid: oidValue(oid), critical: hasCritical && second.content[0] !== 0, value: octets.content }
  })
}

/** Reads the subject CNs and the extensions of a DER certificate; throws DerError when it is not one. */
export function readCertFields (der: Uint8Array): CertFields {
  let certificate: DerElement
  try {
    certificate = readOnly(der)
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err))
  }
  const [tbs] = sequence(certificate, 'Certificate')
  const fields = sequence(tbs, 'TBSCertificate')
  // version [0] is optional (v1); then serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
  const first = isContext(fields[0], 0) ? 1 : 0
  if (fields.length < first + 6) throw fail('TBSCertificate is too short')
  const subject = commonNames(fields[first + 4])
  const tagged = fields.slice(first + 6).find((f) => isContext(f, 3))
  return { subjectCommonNames: subject, extensions: tagged === undefined ? [] : extensionsOf(tagged) }
}
