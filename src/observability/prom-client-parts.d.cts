import type * as PromClient from 'prom-client'

declare const parts: {
  core (): {
    Registry: typeof PromClient.Registry
    Counter: typeof PromClient.Counter
    Gauge: typeof PromClient.Gauge
    Histogram: typeof PromClient.Histogram
  }
  collectDefaultMetrics (): typeof PromClient.collectDefaultMetrics
}
export = parts
