// A real OTLP/HTTP trace receiver on loopback for tests: `POST /v1/traces` with the JSON encoding
// (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), answered as a collector does; every span decoded into a
// flat record (ids in hex, attributes as plain values) the test can wait for with a bounded wait.

import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'

interface Teardown { teardown: (fn: () => unknown) => void }

type AnyValue = { stringValue?: string, intValue?: number | string, doubleValue?: number, boolValue?: boolean, arrayValue?: { values?: AnyValue[] } }
interface KeyValue { key: string, value: AnyValue }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes?: KeyValue[]
  events?: Array<{ name: string, attributes?: KeyValue[] }>
  links?: Array<{ traceId: string, spanId: string, attributes?: KeyValue[] }>
  status?: { code?: number, message?: string }
}
interface ExportRequest {
  resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }, scopeSpans?: Array<{ scope?: { name?: string }, spans?: OtlpSpan[] }> }>
}

export type Attributes = Record<string, unknown>

/** One received span, decoded. `kind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  name: string
  kind: number
  attributes: Attributes
  events: Array<{ name: string, attributes: Attributes }>
  links: Array<{ traceId: string, spanId: string }>
  /** 0 unset, 1 ok, 2 error. */
  status: number
  scope: string
  resource: Attributes
}

export interface OtlpReceiver {
  /** The base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string
  spans: ReceivedSpan[]
  /** Export requests received (any content type), for checks on what the exporter sends. */
  requests: Array<{ contentType: string | undefined, headers: Record<string, string | string[] | undefined> }>
  /** Resolves with the first span (received already or later) that matches; rejects after `timeoutMs`. */
  waitForSpan: (match: (span: ReceivedSpan) => boolean, timeoutMs?: number) => Promise<ReceivedSpan>
  /** Resolves once `count` spans match, with them; rejects after `timeoutMs`. */
  waitForSpans: (match: (span: ReceivedSpan) => boolean, count: number, timeoutMs?: number) => Promise<ReceivedSpan[]>
}

function valueOf (value: AnyValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  if (value.boolValue !== undefined) return value.boolValue
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf)
  return undefined
}

function attributesOf (list: KeyValue[] | undefined): Attributes {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]))
}

function decode (body: ExportRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = []
  for (const { resource, scopeSpans } of body.resourceSpans ?? []) {
    for (const { scope, spans: list } of scopeSpans ?? []) {
      for (const s of list ?? []) {
        spans.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId === undefined || s.parentSpanId === '' ? undefined : s.parentSpanId,
          name: s.name,
          kind: s.kind,
          attributes: attributesOf(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          status: s.status?.code ?? 0,
          scope: scope?.name ?? '',
          resource: attributesOf(resource?.attributes)
        })
      }
    }
  }
  return spans
}

export async function startOtlpReceiver (t: Teardown): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const requests: OtlpReceiver['requests'] = []
  const waiters = new Set<() => void>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      requests.push({ contentType: req.headers['content-type'], headers: req.headers })
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      if (req.headers['content-type'] !== 'application/json') {
        res.writeHead(415, { 'content-type': 'application/json' }).end('{"message":"this receiver decodes OTLP/JSON only"}')
        return
      }
      try {
        spans.push(...decode(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportRequest))
      } catch {
        res.writeHead(400).end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      for (const wake of waiters) wake()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) }))

  function waitForSpans (match: (span: ReceivedSpan) => boolean, count: number, timeoutMs = 15_000): Promise<ReceivedSpan[]> {
    const matching = () => spans.filter(match)
    if (matching().length >= count) return Promise.resolve(matching().slice(0, count))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`${matching().length} of ${count} matching spans within ${timeoutMs} ms; received: ${spans.map((s) => s.name).join(', ')}`))
      }, timeoutMs)
      function check (): void {
        const found = matching()
        if (found.length < count) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(found.slice(0, count))
      }
      waiters.add(check)
    })
  }

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests,
    waitForSpan: async (match, timeoutMs) => (await waitForSpans(match, 1, timeoutMs))[0]!,
    waitForSpans
  }
}
