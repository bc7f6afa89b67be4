'use strict'
// The parts of prom-client skr uses, each required from its own file (see registry.ts for why
// not the index). CommonJS on purpose: a require() with a literal name is followed by the bundler
// (scripts/bundle.mjs) and resolved by Node from the TypeScript sources alike, and one inside a
// function loads its file on the first call. createRequire() in an ES module would hide the
// names from the bundler.
module.exports = {
  core: () => ({
    Registry: require('prom-client/lib/registry'),
    Counter: require('prom-client/lib/counter'),
    Gauge: require('prom-client/lib/gauge'),
    Histogram: require('prom-client/lib/histogram')
  }),
  collectDefaultMetrics: () => require('prom-client/lib/defaultMetrics')
}
