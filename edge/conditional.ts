// HTTP conditional requests (RFC 9110 §8.8.3, §13): entity-tag lists, weak and strong comparison,
// HTTP dates, and the precondition order of §13.2.2. Framework-free; the caching plugin and the
// resource routes share it so that every 304 and 412 in Keel is decided by the same code.
//
// Content-codings: a strong tag names exact bytes, so a compressed body must not carry the tag of the
// identity body. Keel keeps a resource's strong tag (`"v3"`) for the identity coding and appends the
// coding when a body goes out compressed (`"v3-br"`, see `withContentCoding`); comparisons strip that
// suffix again, because every coding of one version is the same resource state for If-Match and
// If-None-Match. Weak tags (`W/"…"`) are never suffixed: they already promise only equivalence.

import { hash } from 'node:crypto'

export interface EntityTag {
  weak: boolean
  /** The quoted opaque-tag, quotes included: `"v3"`. */
  opaque: string
}

/** `*` in If-Match / If-None-Match: any current representation. */
export const ANY_TAG = '*'

export const strongETag = (value: string | number): string => `"${value}"`
export const weakETag = (value: string): string => `W/"${value}"`

// Bodies of fewer UTF-8 bytes than this are hashed in JavaScript, longer ones with SHA-1. Measured in the
// server on a 229-byte page: SHA-1 ~4.5 µs a request (mostly the native call's fixed cost, not the
// bytes), the loop below ~2 µs; per byte SHA-1 is several times faster, so it wins from a few hundred
// bytes on. (@fastify/etag's docs give the same advice: FNV-1a for small payloads, SHA-1 above.)
const SHORT_BODY = 512
// Strings are encoded into this scratch space (at most 3 UTF-8 bytes per code unit) and hashed there:
// a serialized body is usually a rope of concatenated pieces, and reading one with charCodeAt costs
// several times more per character than reading bytes.
const encoder = new TextEncoder()
const scratch = new Uint8Array(SHORT_BODY * 3)

/**
 * The tag of a short body: 62 bits of a non-cryptographic hash (cyrb53's two multiplicative lanes and
 * final mix, 31 bits of each lane kept) over its bytes, plus their count. Enough for a weak validator:
 * a tag is only ever compared with tags of the same URL, so two versions of one length collide with
 * odds of about 2^-62. Not for anything an attacker must not be able to forge.
 */
function shortBodyTag (bytes: Uint8Array, length: number): string {
  let h1 = 0xdeadbeef | 0
  let h2 = 0x41c6ce57 | 0
  for (let i = 0; i < length; i++) {
    const byte = bytes[i]!
    h1 = Math.imul(h1 ^ byte, 2654435761)
    h2 = Math.imul(h2 ^ byte, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  // 31 bits of each lane: small integers print several times faster than hex or unsigned 32-bit values.
  return weakETag(`${length}-${h2 >>> 1}-${h1 >>> 1}`)
}

/** A weak tag over a serialized body: equal bytes give equal tags, whatever coding carries them later. */
export function weakETagOf (body: string | Buffer): string {
  // Which hash is chosen by the UTF-8 size, so a string and its bytes always get the same one.
  if (typeof body !== 'string') return body.length < SHORT_BODY ? shortBodyTag(body, body.length) : weakETag(hash('sha1', body, 'base64url'))
  if (body.length < SHORT_BODY) {
    const written = encoder.encodeInto(body, scratch).written
    if (written < SHORT_BODY) return shortBodyTag(scratch, written)
  }
  return weakETag(hash('sha1', body, 'base64url'))
}

// The codings a compressed body may carry (what @fastify/compress can produce).
const CODING_SUFFIX = /-(?:br|gzip|deflate|zstd)"$/

/** `"v3"` + `br` → `"v3-br"`: the strong tag of the compressed body. Weak tags and `identity` stay as they are. */
export function withContentCoding (etag: string, coding: string): string {
  if (coding === 'identity' || etag.charCodeAt(0) !== 0x22 /* " */) return etag
  return `${etag.slice(0, -1)}-${coding}"`
}

/** The identity-coding form of a strong tag a client sent back (`"v3-br"` → `"v3"`). */
function withoutContentCoding (opaque: string): string {
  return CODING_SUFFIX.test(opaque) ? `${opaque.slice(0, opaque.lastIndexOf('-'))}"` : opaque
}

function isEtagChar (code: number): boolean {
  // etagc = %x21 / %x23-7E / obs-text
  return code === 0x21 || (code >= 0x23 && code <= 0x7e) || code >= 0x80
}

function parseOne (member: string): EntityTag | undefined {
  const weak = member.startsWith('W/')
  const opaque = weak ? member.slice(2) : member
  if (opaque.length < 2 || opaque.charCodeAt(0) !== 0x22 || opaque.charCodeAt(opaque.length - 1) !== 0x22) return undefined
  for (let i = 1; i < opaque.length - 1; i++) if (!isEtagChar(opaque.charCodeAt(i))) return undefined
  return { weak, opaque }
}

/**
 * Parses an If-Match / If-None-Match value: `*`, or a comma-separated list of entity-tags. Malformed
 * members are skipped, so a garbled header matches nothing (a write is refused, a read is served in full).
 */
export function parseEntityTags (header: string): EntityTag[] | typeof ANY_TAG {
  const trimmed = header.trim()
  if (trimmed === ANY_TAG) return ANY_TAG
  const tags: EntityTag[] = []
  // An opaque-tag may contain `,` (etagc allows it), so split on commas outside quotes only.
  let start = 0
  let quoted = false
  for (let i = 0; i <= trimmed.length; i++) {
    const code = i === trimmed.length ? 0x2c : trimmed.charCodeAt(i)
    if (code === 0x22) quoted = !quoted
    else if (code === 0x2c && !quoted) {
      const tag = parseOne(trimmed.slice(start, i).trim())
      if (tag !== undefined) tags.push(tag)
      start = i + 1
    }
  }
  return tags
}

/** Weak comparison (§8.8.3.2): the opaque-tags match, whatever their weakness. */
function weakMatch (a: EntityTag, b: EntityTag): boolean {
  return withoutContentCoding(a.opaque) === withoutContentCoding(b.opaque)
}

/** Strong comparison: neither tag is weak and the opaque-tags match. */
function strongMatch (a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && withoutContentCoding(a.opaque) === withoutContentCoding(b.opaque)
}

function toTag (etag: string): EntityTag {
  return parseOne(etag) ?? { weak: false, opaque: etag }
}

/**
 * If-None-Match: the tag the client holds that matches `current` (weak comparison), to echo on the 304;
 * `undefined` when nothing matches. `*` matches whenever the resource exists.
 */
export function matchIfNoneMatch (header: string, current: string): string | undefined {
  if (header === current) return current
  const tags = parseEntityTags(header)
  if (tags === ANY_TAG) return current
  const target = toTag(current)
  for (const tag of tags) if (weakMatch(tag, target)) return tag.weak ? `W/${tag.opaque}` : tag.opaque
  return undefined
}

/** If-Match: true when one listed tag strongly matches `current`, or on `*` when the resource exists. */
export function ifMatchPasses (header: string, current: string | undefined): boolean {
  if (current === undefined) return false
  const tags = parseEntityTags(header)
  if (tags === ANY_TAG) return true
  const target = toTag(current)
  for (const tag of tags) if (strongMatch(tag, target)) return true
  return false
}

/** An HTTP-date (IMF-fixdate) for Last-Modified. */
export function httpDate (ms: number): string {
  return new Date(ms).toUTCString()
}

/** Milliseconds of a valid HTTP-date that is not in the future, else undefined (such a header is ignored). */
function parseHttpDate (value: string, now: number): number | undefined {
  const ms = Date.parse(value)
  return Number.isNaN(ms) || ms > now ? undefined : ms
}

/** HTTP dates have one-second resolution: compare whole seconds, or a change in the same second looks older. */
const seconds = (ms: number) => Math.floor(ms / 1000)

export interface Validators {
  /** The current representation's tag (identity coding); undefined when the resource does not exist. */
  etag?: string
  /** Last modification, milliseconds since the epoch. */
  lastModified?: number
}

export interface ConditionalHeaders {
  'if-match'?: string
  'if-none-match'?: string
  'if-modified-since'?: string
  'if-unmodified-since'?: string
}

export type Precondition =
  | { readonly result: 'proceed' }
  | { readonly result: 'not-modified', readonly etag?: string }
  | { readonly result: 'failed' }

const PROCEED: Precondition = { result: 'proceed' }
const FAILED: Precondition = { result: 'failed' }

/** Whether the request is conditional at all; when not, there is nothing to evaluate (or to look up for it). */
export function hasPreconditions (headers: ConditionalHeaders): boolean {
  return headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined ||
    headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined
}

/**
 * Evaluates the preconditions in the order of RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since;
 * then If-None-Match, else (GET/HEAD) If-Modified-Since. `failed` means 412; `not-modified` means 304
 * (only for GET and HEAD) and carries the tag the client holds.
 */
export function evaluatePreconditions (method: string, headers: ConditionalHeaders, current: Validators): Precondition {
  if (!hasPreconditions(headers)) return PROCEED
  const ifMatch = headers['if-match']
  const ifNoneMatch = headers['if-none-match']
  const ifModifiedSince = headers['if-modified-since']
  const ifUnmodifiedSince = headers['if-unmodified-since']

  const now = Date.now()
  if (ifMatch !== undefined) {
    if (!ifMatchPasses(ifMatch, current.etag)) return FAILED
  } else if (ifUnmodifiedSince !== undefined && current.lastModified !== undefined) {
    const since = parseHttpDate(ifUnmodifiedSince, now)
    if (since !== undefined && seconds(current.lastModified) > seconds(since)) return FAILED
  }

  const read = method === 'GET' || method === 'HEAD'
  if (ifNoneMatch !== undefined) {
    if (current.etag === undefined) return PROCEED
    const matched = matchIfNoneMatch(ifNoneMatch, current.etag)
    if (matched === undefined) return PROCEED
    return read ? { result: 'not-modified', etag: matched } : FAILED
  }
  if (read && ifModifiedSince !== undefined && current.lastModified !== undefined) {
    const since = parseHttpDate(ifModifiedSince, now)
    if (since !== undefined && seconds(current.lastModified) <= seconds(since)) return { result: 'not-modified', etag: current.etag }
  }
  return PROCEED
}
