// PreparedHistogram: exposes exactly what prom-client's Histogram exposes for the same observations,
// while each label set is prepared once.

import t from 'tap'
import { Histogram, Registry } from 'prom-client'
import { PreparedHistogram } from '../../core/prepared-histogram.ts'

const BUCKETS = [0.001, 0.005, 0.01, 0.5, 1]
const OPTIONS = { name: 'http_request_duration_seconds', help: 'duration', labelNames: ['method', 'route', 'status_code'] as const, buckets: BUCKETS }
type Labels = { method: string, route: string, status_code: number }
// Bounds themselves, values between them, above the last bound, zero, and repeats in several series.
const OBSERVATIONS: Array<[Labels, number]> = [
  [{ method: 'GET', route: '/a', status_code: 200 }, 0.0004],
  [{ method: 'GET', route: '/a', status_code: 200 }, 0.001],
  [{ method: 'GET', route: '/a', status_code: 200 }, 0.0071],
  [{ method: 'POST', route: '/a', status_code: 201 }, 0.3],
  [{ method: 'GET', route: '(unmatched)', status_code: 404 }, 7.5],
  [{ method: 'GET', route: '/a', status_code: 200 }, 0],
  [{ method: 'POST', route: '/a', status_code: 201 }, 1]
]

function both (): { reference: Histogram<string>, prepared: PreparedHistogram<'method' | 'route' | 'status_code'>, registries: [Registry, Registry] } {
  const registries: [Registry, Registry] = [new Registry(), new Registry()]
  const reference = new Histogram({ ...OPTIONS, labelNames: [...OPTIONS.labelNames], registers: [registries[0]] })
  const prepared = new PreparedHistogram({ ...OPTIONS, registers: [registries[1]] })
  return { reference, prepared, registries }
}

function observeAll (reference: Histogram<string>, prepared: PreparedHistogram<'method' | 'route' | 'status_code'>): void {
  const series = new Map<string, ReturnType<typeof prepared.series>>()
  for (const [labels, value] of OBSERVATIONS) {
    reference.observe(labels, value)
    const key = JSON.stringify(labels)
    if (!series.has(key)) series.set(key, prepared.series(labels))
    series.get(key)!.observe(value)
  }
}

t.test('the exposition text and JSON are the same as prom-client Histogram for the same observations', async (t) => {
  const { reference, prepared, registries } = both()
  observeAll(reference, prepared)
  t.equal(await registries[1].metrics(), await registries[0].metrics())
  t.strictSame(await prepared.get(), await reference.get())
  t.strictSame(await registries[1].getMetricsAsJSON(), await registries[0].getMetricsAsJSON())
})

t.test('a registry reset empties the exposition; kept series count again from zero', async (t) => {
  const { reference, prepared, registries } = both()
  observeAll(reference, prepared)
  registries[0].resetMetrics()
  registries[1].resetMetrics()
  t.equal(await registries[1].metrics(), await registries[0].metrics())
  t.equal((await prepared.get()).values.length, 0)
  observeAll(reference, prepared)
  t.equal(await registries[1].metrics(), await registries[0].metrics())
})

t.test('refuses unknown labels, the le label, unordered buckets and values that are not numbers', async (t) => {
  const prepared = new PreparedHistogram({ ...OPTIONS, registers: [] })
  t.throws(() => prepared.series({ method: 'GET', route: '/', status_code: 200, extra: 1 } as Labels), /not included/)
  t.throws(() => new PreparedHistogram({ ...OPTIONS, labelNames: ['le'], registers: [] }), /reserved/)
  t.throws(() => new PreparedHistogram({ ...OPTIONS, buckets: [1, 0.5], registers: [] }), /ascending/)
  const series = prepared.series({ method: 'GET', route: '/', status_code: 200 })
  t.throws(() => series.observe(Number.NaN), TypeError)
  t.throws(() => series.observe(Number.POSITIVE_INFINITY), TypeError)
})
