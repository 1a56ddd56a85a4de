// What the real-time layer reports on /metrics: the hub's deliveries, replays and Redis failures, the
// WebSocket transport's connections and messages, and the SSE transport's streams. Each plugin creates
// its own family once; hot paths increment prepared children, never a label object.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

export type LabelledCounter = (value: string) => { inc: (n?: number) => void }

/** prom-client children by label value, so a hot path increments without hashing a label object. */
export function byLabel (counter: Counter<string>): LabelledCounter {
  const children = new Map<string, { inc: (n?: number) => void }>()
  return (value) => {
    let child = children.get(value)
    if (child === undefined) children.set(value, child = counter.labels(value))
    return child
  }
}

export function hubMetrics (registry: Registry) {
  const registers = [registry]
  return {
    sent: byLabel(new Counter({ name: 'ws_messages_sent_total', help: 'Real-time messages sent, by event (each recipient counts)', labelNames: ['event'], registers })),
    replayed: new Histogram({ name: 'room_replay_messages', help: 'Messages replayed per resume (room:join with since, SSE Last-Event-ID) that the history covered', buckets: [0, 1, 10, 50, 100, 500, 1000, 10_000], registers }),
    replays: byLabel(new Counter({ name: 'room_replays_total', help: 'Resumes, by result: recovered, or gap (the history no longer reached back)', labelNames: ['result'], registers })),
    redisFailures: byLabel(new Counter({ name: 'room_hub_redis_failures_total', help: 'Room hub operations that could not use Redis (the hub carried on for this instance), by operation', labelNames: ['operation'], registers }))
  }
}
export type HubMetrics = ReturnType<typeof hubMetrics>

export function webSocketMetrics (registry: Registry) {
  const registers = [registry]
  return {
    open: new Gauge({ name: 'ws_connections', help: 'Open WebSocket connections', registers }),
    opened: byLabel(new Counter({ name: 'ws_connections_opened_total', help: 'WebSocket connections opened, by transport: h1 (HTTP/1.1 upgrade) or h2 (HTTP/2 extended CONNECT)', labelNames: ['transport'], registers })),
    received: byLabel(new Counter({ name: 'ws_messages_received_total', help: 'WebSocket messages received, by event', labelNames: ['event'], registers })),
    errors: byLabel(new Counter({ name: 'ws_errors_total', help: 'WebSocket error events sent, by code', labelNames: ['code'], registers })),
    closes: byLabel(new Counter({ name: 'ws_closes_total', help: 'WebSocket connections closed, by close code (the server\'s when it closed)', labelNames: ['code'], registers })),
    slowConsumers: byLabel(new Counter({ name: 'ws_slow_consumer_actions_total', help: 'Messages to consumers over their send-buffer bound, by action (close or drop)', labelNames: ['action'], registers }))
  }
}
export type WebSocketMetrics = ReturnType<typeof webSocketMetrics>

export function sseMetrics (registry: Registry) {
  const registers = [registry]
  return {
    open: new Gauge({ name: 'sse_streams', help: 'Open SSE streams', registers }),
    slowClosed: new Counter({ name: 'sse_slow_consumer_closes_total', help: 'SSE streams ended because the client stopped reading (over WS_MAX_BUFFERED_BYTES unsent)', registers })
  }
}
export type SseMetrics = ReturnType<typeof sseMetrics>
