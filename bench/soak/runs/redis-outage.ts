// Reliability run 4: Redis killed (SIGKILL) and restarted under WebSocket and rate-limited HTTP
// traffic. Two Keel instances share one real redis-server: A limits fail-open, B fail-closed
// (RATE_LIMIT_FAIL). Passes when neither process dies or logs an unhandled error, HTTP answers stay
// prompt and well-formed (A: 200/429, B: 200/429 and 503 + Retry-After while Redis is down), both
// report not-ready during the outage and ready again within seconds of the restart, room members on
// the same instance keep receiving each other throughout, and cross-instance delivery (the Redis
// fan-out, realtime/hub/redis-bus.ts) works before the outage and resumes after it.

import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Pool } from 'undici'
import { redisSkipReason, startRedis } from '../../../test/helpers/redis.ts'
import type { SoakContext, SoakOutcome, SoakRun } from '../run.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { startKeel, type KeelServer } from '../lib/keel-server.ts'
import { crashFailures, keelPool } from '../lib/keel-client.ts'
import { openLoop } from '../lib/open-loop.ts'
import { formatShare } from '../lib/figures.ts'
import { formatMs } from '../lib/latency.ts'
import { epochMs, RoomProbe, type WindowFigures } from '../lib/room-probe.ts'

interface Shape {
  /** Length of the phase before the kill, of the outage, and of the measured phase after recovery. */
  phaseS: number
  /** Room members per instance, each publishing. */
  membersPerInstance: number
  /** GET PATH per second per instance. */
  httpRate: number
}
const FULL: Shape = { phaseS: 6, membersPerInstance: 6, httpRate: 10 }
const QUICK: Shape = { phaseS: 2.5, membersPerInstance: 3, httpRate: 10 }

const ROOM = 'outage'
// The HTTP traffic's route: a built-in public GET under the rate limit (the probes are exempt), present
// with or without the example resources.
const PATH = '/docs/json'
// Per member: well within the default budget of 20 messages/s.
const PUBLISH_RATE = 3
const WARM_UP_MS = 1000
// The limiter's budget (per client IP, shared by both instances through Redis): what the warm-up and
// half a phase send, so it trips in the middle of the phase before the kill and again after the restart.
const rateLimitFor = (shape: Shape): number => Math.floor(shape.httpRate * 2 * (WARM_UP_MS / 1000 + shape.phaseS / 2))
// Readiness poll interval; an outage must show within READY_DETECT_MS and recovery within READY_RECOVER_MS.
const READY_POLL_MS = 100
const READY_DETECT_MS = 2000
// After redis-server answers PING again: ioredis reconnects with a backoff that reaches ~2 s.
const READY_RECOVER_MS = 5000
// Requests and publishes sent this soon after the kill may have reached Redis just before it died,
// or wait out the limiter's 500 ms command timeout: the outage's rules apply after this.
const TRANSITION_MS = 1000
// A message published this shortly before the kill may be in Redis's hands when it dies, on its way to
// the other instance (cross-instance delivery is at most once): the "before" phase ends this early.
const IN_FLIGHT_MS = 500
// No answer may take longer: a dead Redis must never hang a request (offline queue, long timeouts).
const PROMPT_MS = 1500
// Delivery must be complete within this share (publishes at a phase edge can straddle it).
const DELIVERY_SHARE = 0.99
const DELIVERY_GRACE_MS = 1500

interface Answer { at: number, ms: number, status: number, problem?: string }
/** One readiness poll: when it was sent and when its answer arrived (epochMs). */
interface ReadyProbe { sentAt: number, answeredAt: number, status: number }

/** Whether an answer is one GET PATH may give here; the reason when it is not. */
function malformed (status: number, headers: Record<string, string | string[] | undefined>, body: string, failOpen: boolean): string | undefined {
  if (status === 200) return body.startsWith('{"openapi":') ? undefined : `200 with body ${body.slice(0, 60)}`
  const allowed = failOpen ? [429] : [429, 503]
  if (!allowed.includes(status)) return `status ${status}: ${body.slice(0, 120)}`
  if (!String(headers['content-type']).startsWith('application/problem+json')) return `${status} without problem+json`
  if (headers['retry-after'] === undefined) return `${status} without Retry-After`
  return undefined
}

/** Steady GET PATH on one instance until stopped. */
function httpTraffic (pool: Pool, shape: Shape, failOpen: boolean, answers: Answer[]): { stop: () => Promise<void> } {
  const loop = openLoop(shape.httpRate, shape.httpRate * 120, async () => {
    const at = epochMs()
    const began = performance.now()
    try {
      const res = await pool.request({ path: PATH, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 })
      const body = await res.body.text()
      answers.push({ at, ms: performance.now() - began, status: res.statusCode, problem: malformed(res.statusCode, res.headers, body, failOpen) })
    } catch (err) {
      answers.push({ at, ms: performance.now() - began, status: 0, problem: `no answer: ${(err as Error).message}` })
    }
  })
  return { stop: async () => { loop.stop(); await loop.done } }
}

/** Polls GET /health/ready until stopped. */
function readinessPoll (pool: Pool, probes: ReadyProbe[]): { stop: () => Promise<void> } {
  const stopped = new AbortController()
  const polling = (async () => {
    while (!stopped.signal.aborted) {
      const sentAt = epochMs()
      try {
        const res = await pool.request({ path: '/health/ready', method: 'GET', headersTimeout: 3000, bodyTimeout: 3000 })
        await res.body.dump()
        probes.push({ sentAt, answeredAt: epochMs(), status: res.statusCode })
      } catch {
        probes.push({ sentAt, answeredAt: epochMs(), status: 0 })
      }
      await sleep(READY_POLL_MS, undefined, { signal: stopped.signal }).catch(() => {})
    }
  })()
  return { stop: async () => { stopped.abort(); await polling } }
}

const within = (at: number, [from, to]: [number, number]): boolean => at >= from && at < to

function tally (answers: Answer[]): string {
  const counts = new Map<number, number>()
  for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1)
  return [...counts].sort(([a], [b]) => a - b).map(([s, n]) => `${n}× ${s === 0 ? 'none' : s}`).join(', ') || 'none'
}

/** Deliveries between members on the same instance (`local`) and across instances (`cross`). */
function deliveries (w: WindowFigures): { local: [number, number], cross: [number, number] } {
  const local: [number, number] = [0, 0]
  const cross: [number, number] = [0, 0]
  for (const [route, r] of Object.entries(w.byRoute)) {
    const [from, to] = route.split('→')
    const sum = from === to ? local : cross
    sum[0] += r.delivered
    sum[1] += r.expected
  }
  return { local, cross }
}

const share = ([part, whole]: [number, number]): number => (whole === 0 ? 1 : part / whole)

async function redisOutage (ctx: SoakContext): Promise<SoakOutcome> {
  const reason = redisSkipReason({ control: true })
  if (reason !== false) return { pass: false, figures: [], failures: [`cannot run: ${reason}`] }
  const shape = ctx.quick ? QUICK : FULL
  return await withCleanup(async (cleanup) => {
    const redis = await startRedis(cleanup)
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MAX: String(rateLimitFor(shape)), RATE_LIMIT_WINDOW_MS: '60000' }
    const instances: Array<{ name: string, failOpen: boolean, server: KeelServer }> = []
    for (const [name, failOpen] of [['A', true], ['B', false]] as const) {
      const server = await startKeel({ workDir: join(ctx.workDir, name), env: { ...env, RATE_LIMIT_FAIL: failOpen ? 'open' : 'closed' } }, cleanup)
      instances.push({ name, failOpen, server })
    }
    ctx.log(`redis on ${redis.url}; A (fail-open) on ${instances[0]!.server.url}, B (fail-closed) on ${instances[1]!.server.url}`)

    const probe = await RoomProbe.open({
      room: ROOM,
      members: instances.flatMap(({ name, server }) => Array.from({ length: shape.membersPerInstance }, (_, i) => ({
        target: server, sub: `${name.toLowerCase()}-member-${i}`, group: name, publishes: true
      }))),
      ratePerPublisher: PUBLISH_RATE
    })
    cleanup.teardown(() => probe.close())
    const traffic = instances.map(({ server, failOpen }) => {
      const pool = keelPool(server, 8)
      cleanup.teardown(() => pool.destroy())
      const answers: Answer[] = []
      const ready: ReadyProbe[] = []
      return { answers, ready, load: httpTraffic(pool, shape, failOpen, answers), poll: readinessPoll(pool, ready) }
    })
    probe.start()

    // Before: everything up. Then the kill, the outage, the restart and the wait for readiness.
    await sleep(WARM_UP_MS)
    const beforeFrom = epochMs()
    await sleep(shape.phaseS * 1000)
    const killedAt = epochMs()
    const before: [number, number] = [beforeFrom, killedAt - IN_FLIGHT_MS]
    await redis.stop()
    ctx.log('redis-server killed')
    await sleep(shape.phaseS * 1000)
    const restartAt = epochMs()
    await redis.restart()
    const backAt = epochMs()
    ctx.log(`redis-server answering again after ${Math.round(backAt - restartAt)} ms`)
    const readyDeadline = performance.now() + READY_RECOVER_MS * 2
    const allReadyAfter = (): boolean => traffic.every((t) => t.ready.some((p) => p.sentAt >= backAt && p.status === 200))
    while (!allReadyAfter() && performance.now() < readyDeadline) await sleep(READY_POLL_MS)
    const readyAt = epochMs()
    await sleep(shape.phaseS * 1000)
    const after: [number, number] = [readyAt, epochMs()]
    const outage: [number, number] = [killedAt + TRANSITION_MS, restartAt]

    probe.stop()
    await Promise.all(traffic.flatMap((t) => [t.load.stop(), t.poll.stop()]))
    await sleep(DELIVERY_GRACE_MS)
    const ws = {
      before: deliveries(probe.window(...before)),
      outage: deliveries(probe.window(...outage)),
      after: deliveries(probe.window(...after))
    }
    const publishes = probe.window(before[0], after[1])

    const failures: string[] = []
    const figures: SoakOutcome['figures'] = [
      ['timeline', `kill after ${shape.phaseS} s of traffic; ${shape.phaseS} s outage; Redis answering ${formatMs(backAt - restartAt)} after restart; both ready ${formatMs(readyAt - backAt)} later`]
    ]
    for (const [i, { name, failOpen, server }] of instances.entries()) {
      const { answers, ready } = traffic[i]!
      const label = `${name} (RATE_LIMIT_FAIL=${failOpen ? 'open' : 'closed'})`
      failures.push(...crashFailures(server, name))
      const bad = answers.filter((a) => a.problem !== undefined)
      if (bad.length > 0) failures.push(`${name}: ${bad.length} answers not well-formed, e.g. ${bad.slice(0, 3).map((a) => a.problem).join('; ')}`)
      const slowest = Math.max(...answers.map((a) => a.ms))
      if (slowest > PROMPT_MS) failures.push(`${name}: an answer took ${formatMs(slowest)} (more than ${PROMPT_MS} ms)`)
      const inOutage = answers.filter((a) => within(a.at, outage))
      const expected = failOpen ? 200 : 503
      const off = inOutage.filter((a) => a.status !== expected)
      if (inOutage.length === 0 || off.length > 0) failures.push(`${name}: while Redis was down, ${off.length} of ${inOutage.length} answers were not ${expected}`)
      const afterAnswers = answers.filter((a) => within(a.at, after))
      if (afterAnswers.some((a) => a.status === 503)) failures.push(`${name}: still answering 503 after Redis was back and it reported ready`)
      if (!afterAnswers.some((a) => a.status === 429)) failures.push(`${name}: no 429 after the restart: the limiter is not counting in Redis again`)

      // A poll in flight at the kill may see either state: before = answered before it, after = sent after it.
      const notReady = ready.find((p) => p.sentAt >= killedAt && p.status === 503)
      const detectMs = notReady === undefined ? Number.NaN : notReady.answeredAt - killedAt
      if (!(detectMs <= READY_DETECT_MS)) failures.push(`${name}: /health/ready did not report 503 within ${READY_DETECT_MS} ms of the kill`)
      if (ready.some((p) => p.answeredAt < killedAt && p.status !== 200)) failures.push(`${name}: /health/ready was not 200 before the kill`)
      const readyAgain = ready.find((p) => p.sentAt >= backAt && p.status === 200)
      const recoverMs = readyAgain === undefined ? Number.NaN : readyAgain.answeredAt - backAt
      if (!(recoverMs <= READY_RECOVER_MS)) failures.push(`${name}: /health/ready not 200 again within ${READY_RECOVER_MS} ms of Redis answering`)

      figures.push(
        [`${label} GET ${PATH} before / outage / after`, [before, outage, after].map((w) => tally(answers.filter((a) => within(a.at, w)))).join(' | ')],
        [`${name} slowest answer; readiness 503 after kill / 200 after restart`, `${formatMs(slowest)}; ${formatMs(detectMs)} / ${formatMs(recoverMs)}`]
      )
    }

    for (const phase of ['before', 'outage', 'after'] as const) {
      if (share(ws[phase].local) < DELIVERY_SHARE) failures.push(`WebSocket delivery on the same instance ${phase === 'outage' ? 'during the outage' : phase}: ${formatShare(...ws[phase].local)}`)
    }
    const refusals = Object.entries(publishes.refused).map(([code, n]) => `${n}× ${code}`).join(', ')
    if (publishes.acked < publishes.published * DELIVERY_SHARE) failures.push(`publishes acknowledged: ${formatShare(publishes.acked, publishes.published)} (refused: ${refusals})`)
    if (publishes.closed.length > 0) failures.push(`room members were disconnected: ${publishes.closed.join(', ')}`)
    figures.push(
      ['WS same-instance delivery before / outage / after', `${formatShare(...ws.before.local)} | ${formatShare(...ws.outage.local)} | ${formatShare(...ws.after.local)}`],
      ['WS publishes acknowledged', `${formatShare(publishes.acked, publishes.published)}${refusals === '' ? '' : ` (refused: ${refusals})`}`]
    )

    // Cross-instance delivery through Redis (realtime/hub/redis-bus.ts): complete before the outage, none
    // required during it (no shared bus), and resumed once both instances report ready again.
    if (share(ws.before.cross) < DELIVERY_SHARE) failures.push(`cross-instance delivery before the outage: ${formatShare(...ws.before.cross)}`)
    if (share(ws.after.cross) < DELIVERY_SHARE) failures.push(`cross-instance delivery after recovery: ${formatShare(...ws.after.cross)}`)
    figures.push(['WS cross-instance delivery before / outage / after', `${formatShare(...ws.before.cross)} | ${formatShare(...ws.outage.cross)} | ${formatShare(...ws.after.cross)}`])

    return { pass: failures.length === 0, figures, failures }
  })
}

export const run: SoakRun = {
  number: 4,
  name: 'redis-outage',
  title: 'Redis killed and restarted under WebSocket and rate-limited traffic: no crash, local service continues, recovery after restart',
  run: redisOutage
}
