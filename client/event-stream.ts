// A streaming `text/event-stream` parser (the WHATWG "server-sent events" format): text goes in as it
// arrives, in chunks cut anywhere, and whole events come out. Comments (heartbeats) and `retry:` are
// dropped; the client keeps its own reconnect policy and its own cursor.

export interface StreamEvent {
  /** `message` when the block named no event. */
  event: string
  data: string
  /** The block's `id:` field, when it had one. */
  id: string | undefined
}

export class EventStreamParser {
  #buffer = ''
  #event = ''
  #data: string[] = []
  #id: string | undefined
  #started = false

  /** Parses a chunk; returns the events it completed, in order. */
  push (chunk: string): StreamEvent[] {
    let text = this.#buffer + chunk
    // The stream may start with a byte order mark, which is not part of the first field.
    if (!this.#started && text.length > 0) {
      this.#started = true
      if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1)
    }
    const events: StreamEvent[] = []
    let start = 0
    for (;;) {
      const end = lineEnd(text, start)
      if (end === undefined) break
      const done = this.#line(text.slice(start, end.at))
      if (done !== undefined) events.push(done)
      start = end.next
    }
    this.#buffer = text.slice(start)
    return events
  }

  /** One line: a field, a comment, or the blank line that dispatches the event. */
  #line (line: string): StreamEvent | undefined {
    if (line === '') return this.#dispatch()
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#event = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    return undefined
  }

  #dispatch (): StreamEvent | undefined {
    const event = this.#event === '' ? 'message' : this.#event
    const data = this.#data
    const id = this.#id
    this.#event = ''
    this.#data = []
    this.#id = undefined
    if (data.length === 0) return undefined
    return { event, data: data.join('\n'), id }
  }
}

/** Where the line starting at `from` ends (CRLF, LF or CR), or undefined when it is not complete yet. */
function lineEnd (text: string, from: number): { at: number, next: number } | undefined {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 10) return { at: i, next: i + 1 }
    if (c === 13) {
      // A CR at the end of the chunk may be the first half of a CRLF: wait for the next chunk.
      if (i + 1 === text.length) return undefined
      return { at: i, next: text.charCodeAt(i + 1) === 10 ? i + 2 : i + 1 }
    }
  }
  return undefined
}
