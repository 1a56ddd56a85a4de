// Readiness state: components register checks (`fastify.health.addCheck`), shutdown flips the
// app to not-ready at once. core/health-routes.ts serves the result.

import fp from 'fastify-plugin'

export type CheckStatus = 'ok' | 'degraded' | 'fail'
export interface CheckResult { status: CheckStatus, detail?: string }
export type HealthCheck = () => CheckResult | Promise<CheckResult>

export interface Readiness {
  ready: boolean
  checks: Record<string, CheckResult>
}

export interface Health {
  /** A `required` check that fails makes the app not ready; an optional one only reports. */
  addCheck: (name: string, check: HealthCheck, opts?: { required?: boolean }) => void
  markShuttingDown: () => void
  readonly shuttingDown: boolean
  evaluate: () => Promise<Readiness>
}

declare module 'fastify' {
  interface FastifyInstance {
    health: Health
  }
}

// A check that hangs must not hang the probe: the orchestrator would read it as down anyway.
const CHECK_TIMEOUT_MS = 1000

async function runCheck (check: HealthCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'fail', detail: `no answer within ${CHECK_TIMEOUT_MS} ms` }), CHECK_TIMEOUT_MS)
  })
  try {
    return await Promise.race([Promise.resolve().then(check), timeout])
  } catch (err) {
    return { status: 'fail', detail: (err as Error).message }
  } finally {
    clearTimeout(timer)
  }
}

export default fp(async function health (fastify) {
  const checks = new Map<string, { check: HealthCheck, required: boolean }>()
  let shuttingDown = false
  const state: Health = {
    addCheck (name, check, opts = {}) {
      checks.set(name, { check, required: opts.required ?? true })
    },
    markShuttingDown () { shuttingDown = true },
    get shuttingDown () { return shuttingDown },
    async evaluate () {
      const entries = await Promise.all([...checks].map(async ([name, c]) => [name, await runCheck(c.check), c.required] as const))
      const results: Record<string, CheckResult> = { shutdown: shuttingDown ? { status: 'fail', detail: 'shutting down' } : { status: 'ok' } }
      let ready = !shuttingDown
      for (const [name, result, required] of entries) {
        results[name] = result
        if (required && result.status === 'fail') ready = false
      }
      return { ready, checks: results }
    }
  }
  fastify.decorate('health', state)
  fastify.addHook('preClose', async () => { shuttingDown = true })
}, { name: 'keel-health' })
