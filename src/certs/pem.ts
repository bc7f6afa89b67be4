// PEM (RFC 7468) to node:crypto certificates and back. THIM and KDS hand out PEM bundles; every
// block is parsed strictly, so a truncated or padded certificate fails here rather than later as a
// confusing signature error.
import { X509Certificate } from 'node:crypto'
import { CertChainInvalid } from '../errors.ts'

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g
const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/

function parseBlock (body: string, index: number): X509Certificate {
  if (!BASE64_BODY.test(body)) {
    throw new CertChainInvalid(`PEM certificate ${index} has characters outside base64`, { details: { block: index } })
  }
  const der = Buffer.from(body.replace(/\s+/g, ''), 'base64')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
  } catch (err) {
    throw new CertChainInvalid(`PEM certificate ${index} is not a DER X.509 certificate`, { cause: err, details: { block: index } })
  }
  // OpenSSL ignores bytes after the certificate; we do not accept them silently.
  if (cert.raw.length !== der.length) {
    throw new CertChainInvalid(`PEM certificate ${index} has ${der.length - cert.raw.length} bytes after the certificate, want 0`,
      { details: { block: index } })
  }
  return cert
}

/**
 * Every CERTIFICATE block of a PEM text, in order; other block types (keys, CRLs) and text between
 * blocks are ignored. Throws CertChainInvalid on an unterminated or undecodable block, or on text
 * that holds no PEM block at all.
 */
export function splitPem (text: string): X509Certificate[] {
  if (typeof text !== 'string') throw new TypeError('PEM text must be a string')
  const certs: X509Certificate[] = []
  let blocks = 0
  for (const match of text.matchAll(BLOCK)) {
    const [, begin = '', body = '', end = ''] = match
    blocks++
    if (begin !== end) {
      throw new CertChainInvalid(`PEM block ${blocks} begins as "${begin}" but ends as "${end}"`, { details: { block: blocks } })
    }
    if (begin === 'CERTIFICATE') certs.push(parseBlock(body, certs.length))
  }
  const rest = text.replace(BLOCK, '')
  if (rest.includes('-----BEGIN') || rest.includes('-----END')) {
    throw new CertChainInvalid('PEM text has an unterminated or malformed block')
  }
  if (blocks === 0 && rest.trim() !== '') {
    throw new CertChainInvalid('text is not PEM: no -----BEGIN ...----- block found')
  }
  return certs
}

/** A certificate as a PEM CERTIFICATE block (64-column base64, trailing newline). */
export function toPem (cert: X509Certificate): string {
  if (!(cert instanceof X509Certificate)) throw new TypeError('cert must be a node:crypto X509Certificate')
  const lines = cert.raw.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`
}
