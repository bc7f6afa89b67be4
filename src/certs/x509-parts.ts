// @peculiar/x509 with the reflect-metadata polyfill it needs first, loaded with import() when an
// emulated chain is generated (simulated/emulated-chain-generator.ts). Imported through this module rather than with
// import('@peculiar/x509'): the bundler (scripts/bundle.mjs) takes the package's CommonJS build,
// whose export names it cannot list, so an import() of the package (or an `export *` of it) would
// have only `default` there. A namespace import is an object with every export, in Node and in
// the bundle alike.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

export { x509 }
