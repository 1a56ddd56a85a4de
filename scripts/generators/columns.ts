// How a field is stored in each SQL dialect: its column, the type the driver hands back, and the
// conversions between the store's value and the row's. SQLite (STRICT tables) keeps booleans as 0/1,
// times as integer milliseconds and lists as JSON text; PostgreSQL has boolean, timestamptz and text[].

import type { Field } from './fields.ts'

export type Dialect = 'sqlite' | 'postgres'

/** A 32-bit range fits PostgreSQL's `integer`; wider needs `bigint`, which the driver returns as a string. */
const isBigint = (f: Field): boolean => f.kind === 'integer' && ((f.min ?? 0) < -2147483648 || (f.max ?? 0) > 2147483647)

const SQLITE_TYPE = { string: 'TEXT', integer: 'INTEGER', number: 'REAL', boolean: 'INTEGER', 'date-time': 'INTEGER', 'string[]': 'TEXT' } as const
const POSTGRES_TYPE = { string: 'text', integer: 'integer', number: 'double precision', boolean: 'boolean', 'date-time': 'timestamptz', 'string[]': 'text[]' } as const

/** The column's definition in a CREATE TABLE, padded like the others. */
export function columnDefinition (f: Field, dialect: Dialect): string {
  const type = dialect === 'sqlite' ? SQLITE_TYPE[f.kind] : (isBigint(f) ? 'bigint' : POSTGRES_TYPE[f.kind])
  const notNull = f.optional ? '' : ' NOT NULL'
  const check = dialect === 'sqlite' && f.kind === 'boolean' ? ` CHECK (${f.column} IN (0, 1))` : ''
  return `${f.column.padEnd(10)} ${type.padEnd(dialect === 'sqlite' ? 7 : 11)}${notNull}${check}`.trimEnd()
}

/** The TypeScript type of the column's value as the driver returns it. */
export function rowType (f: Field, dialect: Dialect): string {
  const sqlite = { string: 'string', integer: 'number', number: 'number', boolean: 'number', 'date-time': 'number', 'string[]': 'string' }
  const postgres = { string: 'string', integer: isBigint(f) ? 'string' : 'number', number: 'number', boolean: 'boolean', 'date-time': 'Date', 'string[]': 'string[]' }
  const type = (dialect === 'sqlite' ? sqlite : postgres)[f.kind]
  return f.optional ? `${type} | null` : type
}

const nullSafe = (f: Field, expr: string, convert: (v: string) => string): string =>
  f.optional ? `${expr} === null ? null : ${convert(expr)}` : convert(expr)

/** The store's value (`expr`) → the statement's parameter. */
export function toParam (f: Field, expr: string, dialect: Dialect): string {
  if (dialect === 'sqlite') {
    if (f.kind === 'boolean') return nullSafe(f, expr, (v) => `(${v} ? 1 : 0)`)
    if (f.kind === 'string[]') return nullSafe(f, expr, (v) => `JSON.stringify(${v})`)
    return expr
  }
  return f.kind === 'date-time' ? nullSafe(f, expr, (v) => `new Date(${v})`) : expr
}

/** The row's value (`expr`) → the store's. */
export function fromRow (f: Field, expr: string, dialect: Dialect): string {
  if (dialect === 'sqlite') {
    if (f.kind === 'boolean') return nullSafe(f, expr, (v) => `${v} === 1`)
    if (f.kind === 'string[]') return nullSafe(f, expr, (v) => `JSON.parse(${v}) as string[]`)
    return expr
  }
  if (f.kind === 'date-time') return nullSafe(f, expr, (v) => `${v}.getTime()`)
  if (isBigint(f)) return nullSafe(f, expr, (v) => `Number(${v})`)
  return expr
}
