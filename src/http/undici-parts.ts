// The parts of undici skr uses, loaded with import() on the first upstream request (upstream.ts).
// Imported through this module rather than with import('undici'): undici is CommonJS, and while
// Node finds a CommonJS module's export names for import(), a bundler cannot; in the bundle
// (scripts/bundle.mjs) import('undici') would have only `default`. A static re-export names them
// for both.
export { Agent, Pool, ProxyAgent, request } from 'undici'
