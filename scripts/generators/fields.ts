// A resource's fields, parsed from `--fields 'title:string(1..200),done:boolean,due?:date-time'`, and
// how each kind of field reads in every place the generated code names it: the TypeBox schemas, the
// TypeScript types, both SQL dialects, the conversions between JSON, the store and the rows, and
// sample values for the generated tests. One table per kind, so a new kind is one entry.

import { GeneratorError } from './plan.ts'
import { RESERVED_IDENTIFIERS, SQL_RESERVED } from './names.ts'

export const FIELD_KINDS = ['string', 'integer', 'number', 'boolean', 'date-time', 'string[]'] as const
export type FieldKind = typeof FIELD_KINDS[number]

export interface Field {
  /** The JSON property and the store's property: camelCase. */
  readonly name: string
  /** The SQL column: snake_case. */
  readonly column: string
  readonly kind: FieldKind
  readonly optional: boolean
  /** Length (string), value (integer, number) or entry count (string[]). */
  readonly min: number | undefined
  readonly max: number | undefined
}

export const FIELD_SYNTAX = 'name[?]:type[(min..max)] joined by commas; types: string, integer, number, boolean, date-time, string[]'
export const DEFAULT_FIELDS = 'name:string(1..200)'

// Every record has these: a field may not shadow them.
const META_FIELDS = new Set(['id', 'seq', 'version', 'createdAt', 'updatedAt'])
const INT32 = { min: -2147483648, max: 2147483647 }
// An array field's entries: non-empty strings of at most 200 characters.
const ENTRY_MAX_LENGTH = 200
const DEFAULT_STRING_MAX = 1000
const DEFAULT_ARRAY_MAX = 100
const FIELD = /^([a-z][a-zA-Z0-9]{0,39})(\?)?:([a-z-]+(?:\[\])?)(?:\((-?\d+(?:\.\d+)?)?\.\.(-?\d+(?:\.\d+)?)?\))?$/

const snakeOf = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

function checkRange (spec: string, kind: FieldKind, min: number | undefined, max: number | undefined): void {
  const ranged = min !== undefined || max !== undefined
  if (ranged && (kind === 'boolean' || kind === 'date-time')) throw new GeneratorError(`field "${spec}": a ${kind} takes no range`)
  if (kind === 'number') {
    if (min !== undefined && max !== undefined && min > max) throw new GeneratorError(`field "${spec}": the range is empty`)
    return
  }
  for (const bound of [min, max]) {
    if (bound !== undefined && !Number.isSafeInteger(bound)) throw new GeneratorError(`field "${spec}": a ${kind} range takes integers`)
  }
  if (kind !== 'integer' && ((min ?? 0) < 0 || (max !== undefined && max < 1))) {
    throw new GeneratorError(`field "${spec}": a ${kind === 'string' ? 'length' : 'count'} range is within 0.. and allows at least 1`)
  }
  if (min !== undefined && max !== undefined && min > max) throw new GeneratorError(`field "${spec}": the range is empty`)
}

function parseField (spec: string): Field {
  const m = FIELD.exec(spec)
  if (m === null) throw new GeneratorError(`field "${spec}" does not read as ${FIELD_SYNTAX}`)
  const [, name, optional, kindText, minText, maxText] = m
  const kind = FIELD_KINDS.find((k) => k === kindText)
  if (kind === undefined) throw new GeneratorError(`field "${spec}": unknown type "${kindText}" (one of ${FIELD_KINDS.join(', ')})`)
  const column = snakeOf(name!)
  if (META_FIELDS.has(name!)) throw new GeneratorError(`field "${name}": every record already has ${[...META_FIELDS].join(', ')}`)
  if (RESERVED_IDENTIFIERS.has(name!) || SQL_RESERVED.has(column)) {
    throw new GeneratorError(`field "${name}" is a reserved word in TypeScript or SQL; choose another name`)
  }
  const min = minText === undefined ? undefined : Number(minText)
  const max = maxText === undefined ? undefined : Number(maxText)
  checkRange(spec, kind, min, max)
  return withDefaults({ name: name!, column, kind, optional: optional === '?', min, max })
}

/** Bounds made explicit: a string is at most 1000 characters, an integer 32-bit, a list at most 100 entries. */
function withDefaults (field: Field): Field {
  switch (field.kind) {
    case 'string': return { ...field, max: field.max ?? DEFAULT_STRING_MAX }
    case 'integer': return { ...field, min: field.min ?? INT32.min, max: field.max ?? INT32.max }
    case 'string[]': return { ...field, max: field.max ?? DEFAULT_ARRAY_MAX }
    default: return field
  }
}

/** Parses the `--fields` list; throws a GeneratorError naming the first bad entry. */
export function parseFields (text: string): Field[] {
  const specs = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (specs.length === 0) throw new GeneratorError(`--fields is empty; expected ${FIELD_SYNTAX}`)
  const fields = specs.map(parseField)
  const seen = new Set<string>()
  for (const field of fields) {
    if (seen.has(field.column)) throw new GeneratorError(`field "${field.name}" is declared twice`)
    seen.add(field.column)
  }
  return fields
}

const bounds = (pairs: Array<[string, number | undefined]>): string => {
  const set = pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${String(v)}`)
  return set.length === 0 ? '' : `{ ${set.join(', ')} }`
}

/** The schema of a value a client writes. */
export function inputSchema (f: Field): string {
  const schema = {
    string: () => `Type.String(${bounds([['minLength', f.min], ['maxLength', f.max]])})`,
    integer: () => `Type.Integer(${bounds([['minimum', f.min], ['maximum', f.max]])})`,
    number: () => `Type.Number(${bounds([['minimum', f.min], ['maximum', f.max]])})`,
    boolean: () => 'Type.Boolean()',
    'date-time': () => 'Type.String({ format: \'date-time\' })',
    // Unique: a list with repeats is a client bug. maxItems bounds the record's size.
    'string[]': () => `Type.Array(Type.String({ minLength: 1, maxLength: ${ENTRY_MAX_LENGTH} }), { ${f.min === undefined ? '' : `minItems: ${f.min}, `}maxItems: ${String(f.max)}, uniqueItems: true })`
  }[f.kind]()
  return f.optional ? `Type.Optional(${schema})` : schema
}

/** The schema of a value the API returns: an optional field is null when unset. */
export function outputSchema (f: Field): string {
  const schema = {
    string: 'Type.String()',
    integer: 'Type.Integer()',
    number: 'Type.Number()',
    boolean: 'Type.Boolean()',
    'date-time': 'Type.String({ format: \'date-time\' })',
    'string[]': 'Type.Array(Type.String())'
  }[f.kind]
  return f.optional ? `Type.Union([${schema}, Type.Null()])` : schema
}

/** The store's type of the field (a date-time is milliseconds since the epoch, like createdAt). */
export function storeType (f: Field): string {
  const type = { string: 'string', integer: 'number', number: 'number', boolean: 'boolean', 'date-time': 'number', 'string[]': 'string[]' }[f.kind]
  return f.optional ? `${type} | null` : type
}

/** `expr` applied to the non-null value of an optional field, null passed through. */
const nullSafe = (f: Field, expr: string, convert: (v: string) => string): string =>
  f.optional ? `${expr} === null ? null : ${convert(expr)}` : convert(expr)

/** The JSON body's value → the store's (`expr` reads the body's property). */
export function fromJson (f: Field, expr: string): string {
  if (f.kind === 'date-time') return f.optional ? `${expr} === undefined ? null : Date.parse(${expr})` : `Date.parse(${expr})`
  return f.optional ? `${expr} ?? null` : expr
}

/** The store's value → the JSON the API returns. */
export function toJson (f: Field, expr: string): string {
  return f.kind === 'date-time' ? nullSafe(f, expr, (v) => `new Date(${v}).toISOString()`) : expr
}
