// Frames on the wire: the envelope `{event, data?, id?}` encoded for sending and read back from text.
// Reading never throws: a frame that is not an envelope is ignored by the caller.

export interface Envelope { event: string, data: unknown, id: unknown }

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The envelope of `event`; `data` and `id` are left out when undefined (no id: the server sends no ack). */
export function encodeFrame (event: string, data: unknown, id?: string): string {
  const envelope: Record<string, unknown> = { event }
  if (data !== undefined) envelope.data = data
  if (id !== undefined) envelope.id = id
  return JSON.stringify(envelope)
}

/** The envelope in a text frame, or undefined for binary data, bad JSON or anything without an `event` name. */
export function decodeFrame (raw: unknown): Envelope | undefined {
  if (typeof raw !== 'string') return undefined
  let message: unknown
  try {
    message = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (!isRecord(message) || typeof message.event !== 'string') return undefined
  return { event: message.event, data: message.data, id: message.id }
}
