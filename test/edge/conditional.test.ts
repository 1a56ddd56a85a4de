// Conditional-request rules (RFC 9110 §13) as edge/conditional.ts decides them: entity-tag lists, weak
// and strong comparison, content-coding suffixes, HTTP dates and the precondition order.

import t from 'tap'
import {
  ANY_TAG, evaluatePreconditions, httpDate, ifMatchPasses, matchIfNoneMatch, parseEntityTags,
  strongETag, weakETag, weakETagOf, withContentCoding
} from '../../edge/conditional.ts'

t.test('entity-tag lists parse with weak tags, spaces, commas inside quotes and *', async (t) => {
  t.same(parseEntityTags('"a", W/"b" ,"c,d"'), [
    { weak: false, opaque: '"a"' }, { weak: true, opaque: '"b"' }, { weak: false, opaque: '"c,d"' }
  ])
  t.equal(parseEntityTags(' * '), ANY_TAG)
  t.same(parseEntityTags(''), [])
})

t.test('malformed members are skipped, so garbage matches nothing', async (t) => {
  t.same(parseEntityTags('abc, "ok", w/"lower", "sp ace", "'), [{ weak: false, opaque: '"ok"' }])
  t.equal(matchIfNoneMatch('v1', '"v1"'), undefined, 'an unquoted tag is not a tag')
  t.notOk(ifMatchPasses('v1', '"v1"'))
})

t.test('If-None-Match uses weak comparison and returns the tag the client holds', async (t) => {
  t.equal(matchIfNoneMatch('"v1"', '"v1"'), '"v1"')
  t.equal(matchIfNoneMatch('W/"v1"', '"v1"'), 'W/"v1"', 'weak matches strong')
  t.equal(matchIfNoneMatch('"x", "v1-gzip"', '"v1"'), '"v1-gzip"', 'a coding suffix names the same version')
  t.equal(matchIfNoneMatch('*', '"v1"'), '"v1"')
  t.equal(matchIfNoneMatch('"v2"', '"v1"'), undefined)
})

t.test('If-Match uses strong comparison: weak tags never match', async (t) => {
  t.ok(ifMatchPasses('"v1"', '"v1"'))
  t.ok(ifMatchPasses('"v0", "v1-br"', '"v1"'), 'the compressed body\'s tag names the same version')
  t.notOk(ifMatchPasses('W/"v1"', '"v1"'))
  t.notOk(ifMatchPasses('"v1"', 'W/"v1"'))
  t.notOk(ifMatchPasses('"v2"', '"v1"'))
  t.ok(ifMatchPasses('*', '"v1"'), '* passes when the resource exists')
  t.notOk(ifMatchPasses('*', undefined), '* fails when it does not')
})

t.test('content-coding suffixes go on strong tags only', async (t) => {
  t.equal(withContentCoding('"v3"', 'br'), '"v3-br"')
  t.equal(withContentCoding('"v3"', 'identity'), '"v3"')
  t.equal(withContentCoding('W/"abc"', 'gzip'), 'W/"abc"')
  t.equal(strongETag(3), '"3"')
  t.equal(weakETag('x'), 'W/"x"')
})

t.test('weak body tags are equal for equal bytes and differ otherwise', async (t) => {
  t.equal(weakETagOf('{"a":1}'), weakETagOf(Buffer.from('{"a":1}')))
  t.not(weakETagOf('{"a":1}'), weakETagOf('{"a":2}'))
  t.match(weakETagOf('x'), /^W\/"[A-Za-z0-9_-]+"$/)
})

t.test('short and long bodies alike: a string and its UTF-8 bytes share a tag, and any one-byte change changes it', async (t) => {
  for (const text of ['', 'héllo wörld €', 'emoji 😀', 'lone \ud800 surrogate', `${'é'.repeat(300)}`, 'x'.repeat(511), 'x'.repeat(512), 'y'.repeat(4096)]) {
    t.equal(weakETagOf(text), weakETagOf(Buffer.from(text)), `${JSON.stringify(text.slice(0, 12))}… (${text.length})`)
  }
  for (const length of [300, 2000]) {
    const body = Buffer.from('{"items":[' + '"abcdefghij",'.repeat(length / 13) + '"z"]}')
    const tags = new Set([weakETagOf(body)])
    for (let i = 0; i < body.length; i++) {
      const changed = Buffer.from(body)
      changed[i]! ^= 1
      tags.add(weakETagOf(changed))
    }
    t.equal(tags.size, body.length + 1, `every position of a ${body.length}-byte body`)
  }
})

const lastModified = Date.parse('2026-01-02T03:04:05.678Z')

t.test('no conditional header: proceed', async (t) => {
  t.same(evaluatePreconditions('GET', {}, { etag: '"v1"' }), { result: 'proceed' })
})

t.test('If-None-Match → not-modified for GET/HEAD, failed for writes', async (t) => {
  t.same(evaluatePreconditions('GET', { 'if-none-match': '"v1"' }, { etag: '"v1"' }), { result: 'not-modified', etag: '"v1"' })
  t.same(evaluatePreconditions('HEAD', { 'if-none-match': '"v1"' }, { etag: '"v1"' }), { result: 'not-modified', etag: '"v1"' })
  t.same(evaluatePreconditions('PUT', { 'if-none-match': '*' }, { etag: '"v1"' }), { result: 'failed' })
  t.same(evaluatePreconditions('GET', { 'if-none-match': '"v0"' }, { etag: '"v1"' }), { result: 'proceed' })
  t.same(evaluatePreconditions('PUT', { 'if-none-match': '*' }, {}), { result: 'proceed' }, 'nothing to match when the resource is missing')
})

t.test('If-Modified-Since compares whole seconds and is ignored when If-None-Match is present', async (t) => {
  const same = httpDate(lastModified)
  t.equal(same, 'Fri, 02 Jan 2026 03:04:05 GMT')
  t.same(evaluatePreconditions('GET', { 'if-modified-since': same }, { etag: '"v1"', lastModified }), { result: 'not-modified', etag: '"v1"' })
  t.same(evaluatePreconditions('GET', { 'if-modified-since': httpDate(lastModified - 1000) }, { lastModified }), { result: 'proceed' })
  t.same(evaluatePreconditions('GET', { 'if-modified-since': same, 'if-none-match': '"v0"' }, { etag: '"v1"', lastModified }), { result: 'proceed' })
  t.same(evaluatePreconditions('POST', { 'if-modified-since': same }, { lastModified }), { result: 'proceed' }, 'only for reads')
  t.same(evaluatePreconditions('GET', { 'if-modified-since': 'yesterday' }, { lastModified }), { result: 'proceed' }, 'an invalid date is ignored')
  t.same(evaluatePreconditions('GET', { 'if-modified-since': httpDate(Date.now() + 86_400_000) }, { lastModified }), { result: 'proceed' }, 'a future date is ignored')
})

t.test('If-Match decides before If-None-Match; If-Unmodified-Since only without If-Match', async (t) => {
  t.same(evaluatePreconditions('PUT', { 'if-match': '"v0"' }, { etag: '"v1"' }), { result: 'failed' })
  t.same(evaluatePreconditions('PUT', { 'if-match': '"v1"' }, { etag: '"v1"' }), { result: 'proceed' })
  t.same(evaluatePreconditions('PUT', { 'if-match': '"v1"' }, {}), { result: 'failed' }, 'a missing resource never passes If-Match')
  t.same(evaluatePreconditions('PUT', { 'if-unmodified-since': httpDate(lastModified - 1000) }, { lastModified }), { result: 'failed' })
  t.same(evaluatePreconditions('PUT', { 'if-unmodified-since': httpDate(lastModified) }, { lastModified }), { result: 'proceed' })
  t.same(evaluatePreconditions('PUT', { 'if-match': '"v1"', 'if-unmodified-since': httpDate(lastModified - 1000) }, { etag: '"v1"', lastModified }),
    { result: 'proceed' }, 'If-Unmodified-Since is ignored when If-Match is present')
})
