// Waiting on a condition the test cannot be told about (server-side state): polled on a short timer,
// and always bounded, so a broken promise fails the test instead of hanging it.

/** Resolves when `condition` holds; fails the wait after `timeoutMs`. */
export async function until (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
