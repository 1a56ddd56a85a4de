// Adding a field to a response's `Vary` header without repeating one already there (or `*`):
// several plugins make a response depend on a request header, each says so here.

import type { FastifyReply } from 'fastify'

/** Appends `field` (as written: lower-case where a plugin must recognise its own) to `Vary` unless it is listed. */
export function addVary (reply: FastifyReply, field: string): void {
  const vary = reply.getHeader('vary')
  if (vary === undefined) {
    reply.header('vary', field)
    return
  }
  const listed = String(vary).split(',').map((f) => f.trim().toLowerCase())
  if (!listed.includes(field.toLowerCase()) && !listed.includes('*')) reply.header('vary', `${String(vary)}, ${field}`)
}
