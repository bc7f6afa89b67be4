// Route schemas compiled on first use instead of at app.ready(). fastify's defaults (Ajv for
// validation, fast-json-stringify for responses) compile every route's schemas when the app starts:
// loading Ajv and generating ~40 functions is the largest part of the time between listen() and
// the first answer. These factories hand fastify the same compilers, built by fastify's own
// packages with the same options, but each compiled function is created the first time its route
// validates or serialises; a route never called never loads Ajv. A schema that does not compile
// (there is none: every route is exercised by the tests) would fail its first request with a 500
// instead of failing start-up.
import type { FastifyServerOptions } from 'fastify'
import compilers from './fastify-compilers.cjs'

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
type ValidatorFactory = NonNullable<CompilersFactory['buildValidator']>
type SerializerFactory = NonNullable<CompilersFactory['buildSerializer']>
type Validate = ((...args: unknown[]) => unknown) & { errors?: unknown, schemaEnv?: unknown }
type Serialize = (data: unknown) => string


function lazyValidator (compile: () => Validate): Validate {
  let fn: Validate | undefined
  const real = (): Validate => {
    fn ??= compile()
    return fn
  }
  // fastify passes Ajv's data context when the function has `schemaEnv`, and reads `errors` after
  // a failed call: both are forwarded from the compiled function (reading schemaEnv compiles it).
  const validate = ((...args: unknown[]) => real()(...args)) as Validate
  Object.defineProperty(validate, 'errors', { get: () => fn?.errors, set: (value: unknown) => { real().errors = value } })
  Object.defineProperty(validate, 'schemaEnv', { get: () => real().schemaEnv })
  return validate
}

function lazySerializer (compile: () => Serialize): Serialize {
  let fn: Serialize | undefined
  return (data) => {
    fn ??= compile()
    return fn(data)
  }
}

/** The `schemaController` option of a fastify app whose route schemas compile on first use. */
export function lazySchemaController (): NonNullable<FastifyServerOptions['schemaController']> {
  // One selector per app, as fastify's default: it pools compilers by schemas and options.
  let validators: ValidatorFactory | undefined
  let serializers: SerializerFactory | undefined
  const buildValidator = ((externalSchemas: unknown, options: unknown) => {
    let compiler: ((route: unknown) => Validate) | undefined
    return (route: unknown) => lazyValidator(() => {
      validators ??= (compilers.ajvCompiler() as () => ValidatorFactory)()
      compiler ??= (validators as (s: unknown, o: unknown) => (route: unknown) => Validate)(externalSchemas, options)
      return compiler(route)
    })
  }) as unknown as ValidatorFactory
  const buildSerializer = ((externalSchemas: unknown, options: unknown) => {
    let compiler: ((route: unknown) => Serialize) | undefined
    return (route: unknown) => lazySerializer(() => {
      serializers ??= (compilers.serializerCompiler() as () => SerializerFactory)()
      compiler ??= (serializers as (s: unknown, o: unknown) => (route: unknown) => Serialize)(externalSchemas, options)
      return compiler(route)
    })
  }) as unknown as SerializerFactory
  return { compilersFactory: { buildValidator, buildSerializer } }
}

/**
 * The `serializerCompiler` of a route whose every body skr builds in full, field by field (the
 * probes and /status; error bodies come from the error handler): plain JSON is then the same text,
 * and the first probe, which start-up and `skr healthcheck` wait for, does not load Ajv and
 * fast-json-stringify (~70 files, ~35 ms) to answer. Routes that serialise upstream data keep the
 * schema's serializer, which also drops properties the schema does not name.
 */
export function plainJsonSerializer (): (data: unknown) => string {
  return (data) => JSON.stringify(data)
}
