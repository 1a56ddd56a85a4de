// An HTTP contender served by Keel on PostgreSQL: for as long as it runs, a throwaway PostgreSQL server
// (the tests' helper: initdb and postgres on a temporary directory and a free loopback port, durability
// off) with one empty database, handed to Keel's bench server as its DATABASE_URL. Its CPU is not in
// Keel's "server CPU" column: that counts the Keel process alone.

import { httpContender, type HttpContenderSpec } from './http-contender.ts'
import type { Contender, RunSettings } from './scenario.ts'
import { postgresSkipReason, startPostgres } from '../../test/helpers/postgres.ts'

/** Why PostgreSQL contenders cannot run on this machine, or undefined when they can. */
export function postgresMissing (): string | undefined {
  return postgresSkipReason() || undefined
}

export function postgresContender (spec: Omit<HttpContenderSpec, 'databaseUrl'>): Contender {
  return {
    id: spec.id,
    label: spec.label,
    start: async (settings: RunSettings) => {
      const teardowns: Array<() => unknown> = []
      const stopDatabase = async () => { for (const teardown of teardowns.reverse()) await teardown() }
      try {
        const postgres = await startPostgres({ teardown: (fn) => { teardowns.push(fn) } })
        const running = await httpContender({ ...spec, databaseUrl: await postgres.createDatabase() }).start(settings)
        return { ...running, stop: async () => { await running.stop(); await stopDatabase() } }
      } catch (err) {
        await stopDatabase()
        throw err
      }
    }
  }
}
