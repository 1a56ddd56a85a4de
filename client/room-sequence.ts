// One room's place in its numbered message stream: which `seq` the client has seen, so a replayed or
// repeated message is dropped and a missing run is noticed. The server does not echo a publish to its
// sender, so the seqs of our own publishes count as seen without ever arriving.

/** What to do with an arriving message. */
export interface SeqVerdict {
  /** False for a message already seen, or our own publish replayed after a reconnect. */
  deliver: boolean
  /** Set when messages between this seq and the one before it never arrived: the last seq before the gap. */
  gapAfter: number | undefined
}

export class RoomSequence {
  /** False while the first join is in flight: such a room is not re-joined after a reconnect. */
  joined = false
  #last: number | undefined
  /** Seqs of our own publishes above `#last`, waiting for the messages before them. */
  readonly #own = new Set<number>()

  /** The highest seq seen (or acknowledged to our own publish); what a re-join sends as `since`. */
  get lastSeq (): number | undefined {
    return this.#last
  }

  /**
   * The first join completed: messages seen while joining already count, the ack's seq is the baseline.
   * Undefined (an SSE stream names no seq): the first message sets the baseline.
   */
  joinedAt (seq: number | undefined): void {
    this.joined = true
    if (seq !== undefined) this.#last = Math.max(this.#last ?? 0, seq)
  }

  /**
   * Re-joined after a reconnect. Recovered: the missed messages came before the ack, keep counting.
   * Not: the ack's seq is a new baseline (a restarted server counts from 1 again, and those messages
   * must not be taken for duplicates). Undefined (an SSE stream names no seq): recovered keeps the
   * count, not recovered lets the next message set the baseline.
   */
  resumedAt (seq: number | undefined, recovered: boolean): void {
    if (recovered) {
      if (seq !== undefined) this.#last = Math.max(this.#last ?? 0, seq)
      return
    }
    this.#last = seq
    this.#own.clear()
  }

  receive (seq: number): SeqVerdict {
    const last = this.#last
    if (last !== undefined && seq <= last) return { deliver: false, gapAfter: undefined }
    let ownBetween = 0
    for (const s of this.#own) if (last !== undefined && s > last && s < seq) ownBetween++
    const own = this.#own.has(seq)
    this.#advance(seq)
    const gap = last !== undefined && seq > last + 1 + ownBetween
    return { deliver: !own, gapAfter: gap ? last : undefined }
  }

  /** Our publish took `seq`: the server sends it to everyone but us, so it counts as seen. */
  published (seq: number): void {
    const last = this.#last
    if (last === undefined || seq === last + 1) this.#advance(seq)
    else if (seq > last) this.#own.add(seq)
  }

  #advance (seq: number): void {
    let last = seq
    while (this.#own.delete(last + 1)) last++
    for (const s of this.#own) if (s <= last) this.#own.delete(s)
    this.#last = last
  }
}
