// The member's auth with auth off, for tests that hand an RPC a fake member: a real MemberAuth over an
// empty in-memory store (so every check is the one a member without users makes), nothing proposed.
import { AuthStore, type MetaStore } from '../../src/auth/store.js';
import { HashPool } from '../../src/auth/hash_pool.js';
import { LoginLimiter, LOGIN_LIMITER_DEFAULTS } from '../../src/auth/login_limiter.js';
import { SimpleTokens } from '../../src/auth/tokens.js';
import { MemberAuth } from '../../src/server/member_auth.js';
import { silentLogger } from '../../src/log.js';

const EMPTY_META: MetaStore = {
  metaGet: () => undefined,
  metaPut: () => {},
  metaDelete: () => {},
  metaScan: () => [],
};

/** A MemberAuth of a member whose auth was never enabled. */
export function authOff(): MemberAuth {
  return new MemberAuth({
    store: AuthStore.load(EMPTY_META),
    tokens: new SimpleTokens({ ttlMs: 300_000, now: Date.now }),
    hasher: new HashPool({ threads: 1, queueMax: 1 }),
    limiter: new LoginLimiter({ ...LOGIN_LIMITER_DEFAULTS, now: Date.now }),
    bcryptCost: 4,
    clientCertAuth: false,
    appliedIndex: () => 0,
    waitApplied: async () => false,
    linearizableRead: async () => {},
    propose: () => Promise.reject(new Error('auth off: nothing to propose')),
    log: silentLogger,
    requestTimeoutMs: 1000,
  });
}
