// Unique 64-bit IDs for requests and leases, shaped as etcd shapes them (pkg/idutil): the low 16 bits of
// the member ID in the top 2 bytes, then 40 bits of Unix milliseconds at start and an 8-bit counter that
// carries into the timestamp. IDs from different members never collide; a restarted member starts past
// the IDs it handed out before (the clock moved on).

const SUFFIX_BITS = 48;
const SUFFIX_MASK = 2 ** SUFFIX_BITS;

/**
 * Generates request IDs.
 *
 *   const ids = new IdGenerator(memberId, Date.now());
 *   const id = ids.next(); // bigint
 */
export class IdGenerator {
  private readonly prefix: bigint;
  private suffix: number;

  constructor(memberId: bigint, nowMs: number) {
    this.prefix = (memberId & 0xffffn) << BigInt(SUFFIX_BITS);
    // 40 bits of milliseconds, shifted left by the 8 counter bits; fits a double exactly (48 bits).
    this.suffix = (nowMs % 2 ** 40) * 256;
  }

  next(): bigint {
    this.suffix = (this.suffix + 1) % SUFFIX_MASK;
    return this.prefix | BigInt(this.suffix);
  }
}
