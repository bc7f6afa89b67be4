'use strict'
// fastify's default compilers (Ajv for validation, fast-json-stringify for responses), loaded on
// the first call: lazy-schemas.ts asks for them when a route first validates or serialises.
// CommonJS on purpose: fastify asks for a compiled function synchronously, so an ES module could
// only load these at start-up (import) or not in time (import()); a require() inside a function
// loads on the first call, from the TypeScript sources (Node) and from the bundle
// (scripts/bundle.mjs follows literal require names and keeps them lazy) alike.
module.exports = {
  ajvCompiler: () => require('@fastify/ajv-compiler'),
  serializerCompiler: () => require('@fastify/fast-json-stringify-compiler')
}
