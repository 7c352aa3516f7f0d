// The sequential specification the checker searches against: one key as a register of interned values
// (0 = absent), with get, put and compare-and-set. Unknown outcomes are folded into `step` so the search
// stays deterministic (see stepRegister).

/** Operation kinds as small integers (the search's hot loop switches on them). */
export const enum RegKind {
  Get = 0,
  Put = 1,
  Cas = 2,
}

/** Value id of "the key does not exist". */
export const ABSENT = 0;
/** "Not known" for an output field. */
export const UNKNOWN = -1;

/** One operation on one key, with its values interned. */
export interface RegOp {
  /** Index into the original history (for reports). */
  historyIndex: number;
  kind: RegKind;
  /** put/cas: value written. */
  value: number;
  /** cas: expected value. */
  expect: number;
  /** get: value read; cas that did not succeed: value seen, or UNKNOWN. */
  found: number;
  /** cas: 1 succeeded, 0 did not, UNKNOWN when the outcome is unknown. */
  succeeded: number;
  callMs: number;
  /** Infinity when the outcome is unknown. */
  returnMs: number;
}

/** The register's state before any operation: the key is absent. */
export const REGISTER_INIT = ABSENT;

/**
 * Applies `op` to `state`; returns the next state, or -1 when the op's recorded outputs are impossible
 * from `state`.
 *
 * A cas with an unknown outcome either took effect (possible only when the compare held, and then it
 * wrote) or had no effect. Linearizing it here with "wrote iff the compare held" covers every execution
 * in which it ran at this point; an execution in which it never ran is covered by linearizing it after
 * every observation (its return time is +∞). So one successor per (state, op) suffices.
 */
export function stepRegister(state: number, op: RegOp): number {
  switch (op.kind) {
    case RegKind.Get:
      return op.found === state ? state : -1;
    case RegKind.Put:
      return op.value;
    case RegKind.Cas:
      if (op.succeeded === 1) return state === op.expect ? op.value : -1;
      if (op.succeeded === 0) return state !== op.expect && (op.found === UNKNOWN || op.found === state) ? state : -1;
      return state === op.expect ? op.value : state;
  }
}
