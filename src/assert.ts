// The one assertion helper: an invariant that does not hold stops the caller loudly (TigerStyle), with
// a message that says which one. Used at the member's boundaries (each Ready, each applied entry) and
// wherever a broken invariant would otherwise corrupt data quietly.

/** Thrown when an invariant does not hold; never caught to carry on as if nothing happened. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/**
 * Throws AssertionError with `message` unless `cond` holds.
 *
 *   assert(e.index === applied + 1, () => `applying entry ${e.index} after ${applied}`);
 */
export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new AssertionError(`assertion failed: ${typeof message === 'function' ? message() : message}`);
}
