// The one validation policy, for every route: schemas are TypeBox, compiled once per route. A body is
// checked exactly as sent (`{"total": "42"}` for an integer is a 400, never 42); query strings, params
// and headers arrive as text and are converted only where the conversion is exact ("7" → 7, but "7.5",
// "07" or "1e1" for an integer, and "1" for a boolean, stay text and fail). Declared defaults fill in
// what the client left out. A schema this policy cannot check stops the start, naming the route.

import { isIPv4, isIPv6 } from 'node:net'
import fp from 'fastify-plugin'
import { FormatRegistry, Kind, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify'

// A failing body lists at most this many field errors: enough to fix a request, bounded for a huge one.
const MAX_FIELD_ERRORS = 20

/** The string formats routes may use (TypeBox knows none by itself and fails every value of an unknown one). */
const FORMATS: Record<string, (value: string) => boolean> = {
  'date-time': (v) => /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)$/.test(v) && !Number.isNaN(Date.parse(v)),
  date: (v) => /^\d{4}-\d\d-\d\d$/.test(v) && new Date(`${v}T00:00:00Z`).toISOString().startsWith(v),
  time: (v) => /^(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)$/.test(v),
  email: (v) => /^[^\s@"<>()[\],;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/.test(v),
  uri: (v) => /^[A-Za-z][A-Za-z0-9+.-]*:/.test(v) && URL.canParse(v),
  uuid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
  ipv4: isIPv4,
  ipv6: isIPv6
}
for (const [name, check] of Object.entries(FORMATS)) if (!FormatRegistry.Has(name)) FormatRegistry.Set(name, check)

// Types a text value may be converted to.
const CONVERTIBLE_TYPES = new Set(['integer', 'number', 'boolean', 'null', 'array'])

/** Every subschema of `schema` (itself included); default values and examples are visited too, harmlessly. */
function * subschemas (schema: unknown): Generator<Record<string, unknown>> {
  if (typeof schema !== 'object' || schema === null) return
  if (!Array.isArray(schema)) yield schema as Record<string, unknown>
  for (const value of Object.values(schema)) yield * subschemas(value)
}

function needsConversion (schema: TSchema): boolean {
  for (const s of subschemas(schema)) {
    if (typeof s.type === 'string' && CONVERTIBLE_TYPES.has(s.type)) return true
    if (s.const !== undefined && typeof s.const !== 'string') return true
  }
  return false
}

function hasDefaults (schema: TSchema): boolean {
  for (const s of subschemas(schema)) if (s.default !== undefined) return true
  return false
}

/** Throws, naming the route, when `schema` is not one this policy can check. */
function assertCheckable (schema: TSchema, where: string): void {
  if (schema[Kind] === undefined) throw new Error(`${where}: the schema is not a TypeBox schema (declare it with Type.*)`)
  for (const s of subschemas(schema)) {
    if (typeof s.format === 'string' && !FormatRegistry.Has(s.format)) {
      throw new Error(`${where}: format "${s.format}" is not registered (known: ${[...FormatRegistry.Entries().keys()].join(', ')})`)
    }
  }
}

/** `converted` where each text value it came from reads back the same, else the original text (which then fails the check). */
function keepExact (original: unknown, converted: unknown): unknown {
  if (typeof original === 'string') {
    if (typeof converted === 'number' || typeof converted === 'boolean') return String(converted) === original ? converted : original
    if (converted === null) return original === 'null' ? null : original
    // A single value for a list: the list of its conversion.
    if (Array.isArray(converted) && converted.length === 1) return [keepExact(original, converted[0])]
    return converted
  }
  if (Array.isArray(original) && Array.isArray(converted)) return converted.map((c, i) => keepExact(original[i], c))
  return converted
}

/**
 * Converts text values in place, property by property: query strings, params and headers are flat
 * objects of text (or lists of text for a repeated key), so only the declared properties change.
 */
function convertExactly (schema: TSchema, value: unknown): unknown {
  const properties = schema.properties as Record<string, TSchema> | undefined
  if (properties === undefined || typeof value !== 'object' || value === null) return keepExact(value, Value.Convert(schema, Value.Clone(value)))
  const fields = value as Record<string, unknown>
  for (const key of Object.keys(properties)) {
    const text = fields[key]
    if (text !== undefined) fields[key] = keepExact(text, Value.Convert(properties[key]!, text))
  }
  return value
}

function fieldErrors (check: TypeCheck<TSchema>, value: unknown): FastifySchemaValidationError[] {
  const errors: FastifySchemaValidationError[] = []
  for (const e of check.Errors(value)) {
    // The renderer reads the path and the message; TypeBox's path already names an unexpected property.
    errors.push({ keyword: 'typebox', schemaPath: '', params: {}, instancePath: e.path, message: e.message })
    if (errors.length === MAX_FIELD_ERRORS) break
  }
  return errors
}

/** The app's validator compiler: one check function per route and request part, built at start-up. */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart, method, url }) => {
  assertCheckable(schema, `${method} ${url} (${httpPart ?? 'schema'})`)
  const check = TypeCompiler.Compile(schema)
  const convert = httpPart !== 'body' && needsConversion(schema)
  const fillDefaults = hasDefaults(schema)
  return (value: unknown) => {
    let input = convert ? convertExactly(schema, value) : value
    if (fillDefaults) input = Value.Default(schema, input)
    if (!check.Check(input)) return { error: fieldErrors(check, input) }
    // `true` leaves the request's own object in place (headers would otherwise be copied on every read).
    return input === value ? true : { value: input }
  }
}

export default fp(async function validation (fastify) {
  fastify.setValidatorCompiler(validatorCompiler)
}, { name: 'keel-validation' })
