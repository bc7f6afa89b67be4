// docs/api.md from the OpenAPI document: the same route schemas the server validates with,
// rendered as markdown by scripts/gen-api-doc.mjs. A test re-renders and compares, so the doc
// cannot drift from the code. The app is built over inert services: nothing is called.
import { loadConfig } from '../config/config.ts'
import { InternalError } from '../errors.ts'
import { createMetricsRegistry } from '../observability/registry.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { isObject as isSchema } from '../text/untrusted.ts'
import { buildApp } from './app.ts'
import type { OpenApiDocument } from './plugins/openapi.ts'

const inert = async (): Promise<never> => { throw new InternalError('the API document builder calls no service') }

const inertAttestation: AttestationService = {
  rawReport: inert,
  combined: inert,
  maaToken: inert,
  status: async () => ({ backend: null, simulated: false, problems: [] })
}
const inertKeyRelease: KeyReleaseService = { release: inert }

/** The document GET /openapi.json serves, from an app with default configuration. */
export async function buildApiDocument (): Promise<OpenApiDocument> {
  const app = buildApp({
    config: loadConfig([], {}),
    attestation: inertAttestation,
    keyRelease: inertKeyRelease,
    metrics: createMetricsRegistry({ defaultMetrics: false })
  })
  try {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' })
    return res.json() as OpenApiDocument
  } finally {
    await app.close()
  }
}

type Schema = Record<string, unknown>

function cell (text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function refName (ref: string): string {
  return ref.slice(ref.lastIndexOf('/') + 1)
}

function typeOf (schema: Schema): string {
  if (typeof schema.$ref === 'string') return `[${refName(schema.$ref)}](#${refName(schema.$ref).toLowerCase()})`
  const type = schema.type
  const base = Array.isArray(type) ? type.join(' or ') : typeof type === 'string' ? type : 'any'
  if (base === 'array' && isSchema(schema.items)) return `array of ${typeOf(schema.items)}`
  if (schema.nullable === true) return `${base} or null`
  return base
}

// Short enums are listed; long ones (ErrorBody's codes) are left to the document and errors.md,
// so adding an error code does not change this page.
const MAX_LISTED_ENUM = 8

function constraints (schema: Schema): string[] {
  const out: string[] = []
  if (Array.isArray(schema.enum)) {
    out.push(schema.enum.length <= MAX_LISTED_ENUM ? `one of ${schema.enum.map(v => `\`${String(v)}\``).join(', ')}` : 'enumerated in `GET /openapi.json`')
  }
  if (typeof schema.minLength === 'number') out.push(`min length ${schema.minLength}`)
  if (typeof schema.maxLength === 'number') out.push(`max length ${schema.maxLength}`)
  if (typeof schema.pattern === 'string') out.push(`pattern \`${schema.pattern}\``)
  if (isSchema(schema.additionalProperties)) out.push(`map of name to ${typeOf(schema.additionalProperties)}`)
  return out
}

// One row per property, nested objects flattened to dotted names.
function fieldRows (schema: Schema, prefix = ''): string[] {
  const properties = isSchema(schema.properties) ? schema.properties : {}
  const required = new Set(Array.isArray(schema.required) ? schema.required as string[] : [])
  const rows: string[] = []
  for (const [name, raw] of Object.entries(properties)) {
    if (!isSchema(raw)) continue
    const notes = [typeof raw.description === 'string' ? raw.description : '', ...constraints(raw)].filter(Boolean).join('; ')
    rows.push(`| \`${prefix}${name}\` | ${typeOf(raw)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(notes)} |`)
    if (raw.type === 'object' && isSchema(raw.properties)) rows.push(...fieldRows(raw, `${prefix}${name}.`))
  }
  return rows
}

// `oneOf` branches that only require one field each (kid xor kids) read as a sentence.
function exactlyOneOf (schema: Schema): string[] {
  if (!Array.isArray(schema.oneOf)) return []
  const fields = schema.oneOf.map(branch => isSchema(branch) && Array.isArray(branch.required) && branch.required.length === 1 && Object.keys(branch).length === 1 ? branch.required[0] as unknown : null)
  if (fields.some(f => typeof f !== 'string')) return []
  return ['', `Exactly one of ${fields.map(f => `\`${String(f)}\``).join(', ')}.`]
}

function schemaBlock (schema: Schema): string[] {
  if (typeof schema.$ref === 'string') return [`Body: ${typeOf(schema)}.`]
  const rows = fieldRows(schema)
  if (rows.length === 0) {
    const notes = constraints(schema)
    return [`Body: ${typeOf(schema)}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}.`]
  }
  return ['| field | type | required | notes |', '| --- | --- | --- | --- |', ...rows, ...exactlyOneOf(schema)]
}

// A response's headers, as one sentence per header.
function headerNotes (response: Schema): string {
  const headers = isSchema(response.headers) ? response.headers : {}
  return Object.entries(headers).map(([name, raw]) => {
    const header = isSchema(raw) ? raw : {}
    const type = isSchema(header.schema) ? typeOf(header.schema) : 'string'
    return `. Header \`${name}\` (${type}): ${typeof header.description === 'string' ? header.description : ''}`
  }).join('')
}

function contentBlocks (content: unknown): string[] {
  if (!isSchema(content)) return []
  const out: string[] = []
  for (const [mediaType, media] of Object.entries(content)) {
    const schema = isSchema(media) && isSchema(media.schema) ? media.schema : {}
    out.push(`\`${mediaType}\``, '', ...schemaBlock(schema), '')
  }
  return out
}

function operationSection (method: string, path: string, op: Schema): string[] {
  const out = [`### ${method.toUpperCase()} ${path}`, '']
  if (typeof op.summary === 'string') out.push(`**${op.summary}.**${typeof op.description === 'string' ? ` ${op.description}` : ''}`, '')
  if (typeof op.operationId === 'string') out.push(`Operation id: \`${op.operationId}\`.`, '')
  const body = isSchema(op.requestBody) ? op.requestBody : null
  if (body !== null) out.push('Request body:', '', ...contentBlocks(body.content))
  const responses = isSchema(op.responses) ? op.responses : {}
  const errors: string[] = []
  for (const [status, raw] of Object.entries(responses)) {
    if (!isSchema(raw)) continue
    const ref = errorRefOf(raw.content)
    if (ref !== null) {
      errors.push(`| ${status} | ${cell(`${typeof raw.description === 'string' ? raw.description : ''}${headerNotes(raw)}`)} |`)
      continue
    }
    out.push(`Response ${status}: ${typeof raw.description === 'string' ? raw.description : ''}`, '', ...contentBlocks(raw.content))
  }
  if (errors.length > 0) out.push('Errors, each an [ErrorBody](#errorbody) (`application/json`):', '', '| status | when |', '| --- | --- |', ...errors, '')
  return out
}

// The shared error answers are listed once per route instead of one block per status class.
function errorRefOf (content: unknown): string | null {
  if (!isSchema(content)) return null
  const media = content['application/json']
  const schema = isSchema(media) && isSchema(media.schema) ? media.schema : null
  return schema !== null && typeof schema.$ref === 'string' && refName(schema.$ref) === 'ErrorBody' ? schema.$ref : null
}

/** Renders the document as docs/api.md (deterministic: same document, same bytes). */
export function renderApiMarkdown (doc: OpenApiDocument): string {
  const out: string[] = [
    '# HTTP API',
    '',
    '<!-- Generated from GET /openapi.json by scripts/gen-api-doc.mjs; do not edit by hand. A test fails when this file is stale. -->',
    '',
    doc.info.description ?? '',
    '',
    `OpenAPI ${doc.openapi} document: \`GET /openapi.json\`. Error codes: [errors.md](errors.md).`,
    ''
  ]
  for (const server of doc.servers ?? []) {
    const variables = Object.entries(server.variables ?? {}).map(([name, v]) => `\`${name}\` is ${v.description ?? `default ${v.default}`}`)
    out.push(`Server: \`${server.url}\`${server.description === undefined ? '' : `: ${server.description}`}${variables.length === 0 ? '' : `; ${variables.join('; ')}`}.`, '')
  }
  if (doc.info.license !== undefined) out.push(`License: ${doc.info.license.url === undefined ? doc.info.license.name : `[${doc.info.license.name}](${doc.info.license.url})`}.`, '')
  for (const tag of doc.tags ?? []) {
    const ops: string[] = []
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        if (isSchema(op) && Array.isArray(op.tags) && op.tags.includes(tag.name)) ops.push(...operationSection(method, path, op))
      }
    }
    if (ops.length === 0) continue
    out.push(`## ${tag.name}`, '', tag.description ?? '', '', ...ops)
  }
  const components = doc.components?.schemas ?? {}
  if (Object.keys(components).length > 0) {
    out.push('## Schemas', '')
    for (const [name, schema] of Object.entries(components)) {
      if (!isSchema(schema)) continue
      out.push(`### ${name}`, '', typeof schema.description === 'string' ? schema.description : '', '', ...schemaBlock(schema), '')
    }
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n'
}
