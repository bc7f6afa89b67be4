// What skr reads from a certificate that node:crypto's X509Certificate does not expose as data:
// the subject's CN values, the raw extensions (OID, extnValue bytes), and the issuer and subject
// Names as bytes (to find a certificate's issuer among many without parsing them all). Read straight from
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

/**
 * The TBSCertificate's fields from `first` on: serialNumber, signature, issuer, validity, subject,
 * subjectPublicKeyInfo, then the optional ones (version [0], when present, is before `first`).
 */
function tbsFields (der: Uint8Array): { fields: DerElement[], first: number } {
  let certificate: DerElement
  try {
    certificate = readOnly(der)
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err))
  }
  const [tbs] = sequence(certificate, 'Certificate')
  const fields = sequence(tbs, 'TBSCertificate')
  const first = isContext(fields[0], 0) ? 1 : 0
  if (fields.length < first + 6) throw fail('TBSCertificate is too short')
  return { fields, first }
}

/** Reads the subject CNs and the extensions of a DER certificate; throws DerError when it is not one. */
export function readCertFields (der: Uint8Array): CertFields {
  const { fields, first } = tbsFields(der)
  const subject = commonNames(fields[first + 4])
  const tagged = fields.slice(first + 6).find((f) => isContext(f, 3))
  return { subjectCommonNames: subject, extensions: tagged === undefined ? [] : extensionsOf(tagged) }
}

/** A certificate's issuer and subject Names, as the content bytes of their DER SEQUENCEs (views into `der`). */
export interface CertNames {
  issuer: Uint8Array
  subject: Uint8Array
}

/** Reads the issuer and subject Names of a DER certificate; throws DerError when it is not one. */
export function readCertNames (der: Uint8Array): CertNames {
  const { fields, first } = tbsFields(der)
  const issuer = fields[first + 2]
  const subject = fields[first + 4]
  if (!isUniversal(issuer, TAG.SEQUENCE) || !isUniversal(subject, TAG.SEQUENCE)) throw fail('issuer or subject is not a Name')
  return { issuer: issuer.content, subject: subject.content }
}
