// The one place ajv's errors (the request schemas of ./schemas.ts) become stable sentences
// naming the field.

/** The parts of an ajv error this module reads (fastify's FastifySchemaValidationError). */
export interface ValidationIssue {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

// Messages for `oneOf` failures where more than one branch passed (ajv says "must match exactly one schema").
const ONE_OF_RULES: Readonly<Record<string, string>> = {
  body: 'body.kid and body.kids are mutually exclusive'
}

// Messages for `pattern` failures, which ajv can only describe as the regex itself.
const PATTERN_RULES: Readonly<Record<string, string>> = {
  'body.kid': 'body.kid must be a key name (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)',
  'body.kids.*': 'body.kids entries must be key names (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)',
  'body.access_token': 'body.access_token must be a bearer token: printable ASCII, without spaces or control characters (CR, LF, NUL)'
}

function fieldPath (context: string, instancePath: string): string {
  const parts = instancePath.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  return [context, ...parts].join('.')
}

/**
 * Turns ajv's first error into a stable sentence naming the field
 * ("body.runtime_data is required", "body.kid must be a string").
 */
export function describeValidationIssue (issue: ValidationIssue, context: string): string {
  const path = fieldPath(context, issue.instancePath)
  const p = issue.params
  switch (issue.keyword) {
    case 'required':
      return `${path}.${String(p.missingProperty)} is required`
    case 'type': {
      if (issue.instancePath === '') return `${path} must be a JSON object`
      const type = String(p.type).split(',')[0] ?? 'value'
      return `${path} must be a${/^[aeiou]/.test(type) ? 'n' : ''} ${type}`
    }
    case 'minLength':
      return p.limit === 1 ? `${path} must not be empty` : `${path} must be at least ${String(p.limit)} characters`
    case 'maxLength':
      return `${path} must be at most ${String(p.limit)} characters`
    case 'pattern':
      return PATTERN_RULES[path] ?? PATTERN_RULES[path.replace(/\.\d+$/, '.*')] ?? `${path} has an invalid format`
    case 'minItems':
      return `${path} must list at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}`
    case 'maxItems':
      return `${path} must list at most ${String(p.limit)} items`
    case 'uniqueItems':
      return `${path} must not list the same item twice`
    case 'oneOf':
      return ONE_OF_RULES[path] ?? `${path} is invalid`
    default:
      return `${path} is invalid`
  }
}
