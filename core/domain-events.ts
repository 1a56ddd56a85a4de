// A small typed in-process event bus for things the domain announces (an item changed).
// Producers (routes) emit; consumers (a resource's real-time feed) subscribe. Listeners run
// synchronously and a throwing listener never breaks the producer or the other listeners.

/**
 * The events and their data. Empty here: each resource declares its own, in its own folder, by
 * declaration merging —
 * `declare module '../../core/domain-events.ts' { interface DomainEventMap { 'notes:changed': NoteChange } }`.
 */
export interface DomainEventMap {}
export type DomainEventName = keyof DomainEventMap
type Listener<E extends DomainEventName> = (data: DomainEventMap[E]) => void

export interface DomainEvents {
  emit: <E extends DomainEventName>(event: E, data: DomainEventMap[E]) => void
  /** Returns the unsubscribe function. */
  on: <E extends DomainEventName>(event: E, listener: Listener<E>) => () => void
}

export function createDomainEvents (onListenerError: (err: unknown, event: DomainEventName) => void): DomainEvents {
  const listeners = new Map<DomainEventName, Set<Listener<DomainEventName>>>()
  return {
    emit (event, data) {
      for (const listener of listeners.get(event) ?? []) {
        try {
          listener(data)
        } catch (err) {
          onListenerError(err, event)
        }
      }
    },
    on (event, listener) {
      let set = listeners.get(event)
      if (set === undefined) listeners.set(event, set = new Set())
      set.add(listener as Listener<DomainEventName>)
      return () => { set.delete(listener as Listener<DomainEventName>) }
    }
  }
}
