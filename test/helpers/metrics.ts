// Reading an app's metrics in tests. They are not on the API port: an app that only takes
// `app.inject` reads its registry directly (what the metrics listener would serve); a listening app
// is scraped on its metrics listener, over a real socket.

import type { App } from '../../app.ts'
import { h1request } from './http.ts'

/** The app's Prometheus text, as a scrape would read it (no listener needed). */
export async function scrapeMetrics (app: App): Promise<string> {
  return await app.metrics.metrics()
}

/** The URL of a listening app's metrics listener (METRICS_PORT=0 in tests: an ephemeral port). */
export function metricsUrl (app: App): string {
  const address = app.metricsAddress()
  if (address === null) throw new Error('the metrics listener is not listening')
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}/metrics`
}

/** GET /metrics on a listening app's metrics listener; the body, or an error naming the status. */
export async function scrapeMetricsListener (url: string): Promise<string> {
  const res = await h1request(url)
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`)
  return res.body
}
