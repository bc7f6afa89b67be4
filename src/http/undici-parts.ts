// The parts of undici skr uses, loaded with import() on the first upstream request (upstream.ts):
// its dispatchers, each with undici's request API. Taken from undici's lib/ files rather than
// from its index, which would evaluate all of undici on first use (fetch, WebSocket,
// EventSource, caches, mocks: ~700 KB of code) and, through its cookies module's read of
// globalThis.Headers, make Node load and compile its own bundled copy of undici as well. Measured
// on Node 24 with one request through an Agent: 74 MB RSS and 11.8 MB of V8 heap after
// `require('undici')`, 61 MB and 7.7 MB this way (docs/architecture.md, bench/README.md).
//
// undici's package has no "exports" map, so these paths are public to Node and to bundlers; they
// are undici's own layout, though, so a test (test/process/http/undici-parts.test.ts) checks every
// part against the index's exports of the same name and fails on an undici whose layout moved.
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js'
import api from 'undici/lib/api/index.js'
import Agent from 'undici/lib/dispatcher/agent.js'
import Pool from 'undici/lib/dispatcher/pool.js'
import ProxyAgent from 'undici/lib/dispatcher/proxy-agent.js'

// What undici's index does to give every dispatcher request(), stream(), pipeline() and so on.
// The same functions on the same prototype: idempotent when the index is loaded too.
Object.assign(Dispatcher.prototype, api)

export { Agent, Pool, ProxyAgent }
