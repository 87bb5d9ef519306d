/**
 * HPACK for the session's HTTP/2 server; the implementation lives in
 * `src/launcher/hpack.ts` (pure, so the launcher can use it too).
 *
 * @module
 */
export * from "../launcher/hpack.ts";
