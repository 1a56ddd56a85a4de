// Units the reliability runs print besides latency (bench/soak/lib/latency.ts): memory in MiB and
// shares of a whole. Pure functions, no I/O.

export const MiB = 1024 * 1024

export function formatMiB (bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MiB).toFixed(1)} MiB` : '—'
}

/** `part` of `whole` as "n/m (x %)". */
export function formatShare (part: number, whole: number): string {
  return `${part}/${whole} (${whole === 0 ? '—' : (100 * part / whole).toFixed(1)} %)`
}
