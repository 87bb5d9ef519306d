/** Version facts shared by both binaries. @module */

/** This project's version. */
export const VERSION = "0.1.0";
/** The BuildKit release this client is wire-compatible with and tested against. */
export const BUILDKIT_VERSION = "v0.32.2";
/** The Deno release the binaries are built and tested with. */
export const DENO_VERSION = "2.9.6";
