/**
 * A one-shot timer that does not load Deno's Node compatibility layer.
 *
 * In Deno 2.9 the global `setTimeout`/`setInterval` are Node-compatible
 * (they return `Timeout` objects) and the first call in a process sets up
 * that layer: 4–10 ms measured here, paid by every command that merely
 * guards a lock or a connection with a timeout. `AbortSignal.timeout` runs
 * on the web timer underneath and costs about 0.3 ms.
 *
 * Like `setTimeout`, a pending timer keeps the process alive and a
 * cancelled one does not (Deno refs the timer of `AbortSignal.timeout`
 * while the signal has a listener).
 *
 * @module
 */

/** Calls `fn` once after `ms` (at least 0), unless the returned cancel function is called first. */
export function after(ms: number, fn: () => void): () => void {
  const delay = Number.isFinite(ms) ? Math.max(0, Math.ceil(ms)) : 0;
  const signal = AbortSignal.timeout(delay);
  const onAbort = () => fn();
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const cancel = after(ms, resolve);
    signal?.addEventListener("abort", () => {
      cancel();
      resolve();
    }, { once: true });
  });
}
