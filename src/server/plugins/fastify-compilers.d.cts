declare const compilers: {
  /** @fastify/ajv-compiler's factory of validator compilers. */
  ajvCompiler (): unknown
  /** @fastify/fast-json-stringify-compiler's factory of serializer compilers. */
  serializerCompiler (): unknown
}
export = compilers
