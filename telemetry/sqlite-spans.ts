// Spans for SQLite statements (node:sqlite has no OpenTelemetry instrumentation): every statement a
// database prepares — the items store's, the Kysely dialect's — runs inside a CLIENT span named and
// described by the database semantic conventions (the query text, never its parameters). Written
// with the API: without tracing each span is a no-op and nothing is computed for it.

import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'

const tracer = trace.getTracer('keel.sqlite')

/** Runs one statement inside its span, named `SELECT items` (operation, then the table when plain). */
function traced<T> (sql: string, run: () => T): T {
  const span = tracer.startSpan('sqlite', { kind: SpanKind.CLIENT })
  if (span.isRecording()) {
    const operation = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SQL'
    const table = /\b(?:from|into|update)\s+["`]?(\w+)/i.exec(sql)?.[1]
    span.updateName(table === undefined ? operation : `${operation} ${table}`)
    span.setAttributes({ 'db.system.name': 'sqlite', 'db.operation.name': operation, 'db.query.text': sql })
    if (table !== undefined) span.setAttribute('db.collection.name', table)
  }
  try {
    return run()
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
    span.setAttribute('error.type', (err as { code?: string }).code ?? 'Error')
    throw err
  } finally {
    span.end()
  }
}

/** Traces `all`, `get` and `run` of every statement `db` prepares from now on (`iterate` streams: not one span). */
export function traceSqliteStatements (db: DatabaseSync): DatabaseSync {
  const prepare = db.prepare.bind(db)
  db.prepare = (...args: Parameters<DatabaseSync['prepare']>): StatementSync => {
    const statement = prepare(...args)
    const sql = args[0]
    // Own properties over the prototype's methods, each calling the original on the statement.
    for (const method of ['all', 'get', 'run'] as const) {
      const original = statement[method]
      Object.defineProperty(statement, method, {
        value: (...parameters: unknown[]) => traced(sql, () => Reflect.apply(original, statement, parameters) as unknown)
      })
    }
    return statement
  }
  return db
}
