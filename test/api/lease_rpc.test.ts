// The Lease RPCs of the table (src/api/rpc.ts) on a fake member and a fake stream, no sockets: keep-alives
// are answered in order with the TTL (0 for an unknown lease), one renew at a time; a flood on one stream
// is paused at KEEPALIVES_QUEUED_PER_STREAM_MAX queued requests and resumed once it drains; a half-close
// ends the stream after the answers; time-to-live of an unknown lease answers TTL -1; a huge TTL is refused
// before it reaches the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RPCS, KEEPALIVES_QUEUED_PER_STREAM_MAX, type AnyBidiRpc, type AnyUnaryRpc, type RpcBidiStream } from '../../src/api/rpc.js';
import { FixedContext } from '../../src/api/context.js';
import type { MemberApi } from '../../src/server/member_api.js';
import { authOff } from '../helpers/auth_off.js';
import type { LeaseKeepAliveRequest, LeaseKeepAliveResponseInit } from '../../src/proto/rpc.js';
import { EtcdError } from '../../src/errors.js';

const byName = (path: string) => RPCS.find((r) => r.desc.path === path)!;

class FakeStream implements RpcBidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponseInit> {
  onMessage: ((m: LeaseKeepAliveRequest) => void) | undefined;
  onHalfClose: (() => void) | undefined;
  written: LeaseKeepAliveResponseInit[] = [];
  pauses = 0;
  resumes = 0;
  paused = false;
  writable = true;
  done = false;
  write(m: LeaseKeepAliveResponseInit): boolean {
    this.written.push(m);
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  end(): void {
    this.done = true;
  }
  pause(): void {
    this.pauses++;
    this.paused = true;
  }
  resume(): void {
    this.resumes++;
    this.paused = false;
  }
}

/** A member whose renews wait until the test releases them (as a follower's forwarded renew does). */
function slowMember() {
  const waiting: Array<() => void> = [];
  let inFlight = 0;
  let inFlightMax = 0;
  const m = {
    header: () => ({ revision: 1 }),
    leaseRenew: (id: bigint) =>
      new Promise<number>((resolve) => {
        inFlight++;
        inFlightMax = Math.max(inFlightMax, inFlight);
        waiting.push(() => {
          inFlight--;
          resolve(id === 404n ? -1 : 30);
        });
      }),
  } as unknown as MemberApi;
  return {
    m,
    waiting,
    get inFlightMax() {
      return inFlightMax;
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

test('a keep-alive flood on one stream is paused at the limit, answered in order one renew at a time, then resumed', async () => {
  const rpc = byName('/etcdserverpb.Lease/LeaseKeepAlive') as AnyBidiRpc;
  const s = slowMember();
  const stream = new FakeStream();
  const done = rpc.serve(s.m, stream as never, new FixedContext()) as Promise<void>;
  const n = 10_000;
  let sent = 0;
  // The client keeps sending while it is not pushed back (flow control stops it while paused).
  while (sent < n && !stream.paused) stream.onMessage!({ ID: BigInt(sent++ % 2 === 0 ? 7 : 404) });
  assert.is(sent, KEEPALIVES_QUEUED_PER_STREAM_MAX + 1, 'paused once the queue held the limit');
  for (let rounds = 0; stream.written.length < n && rounds < 100_000; rounds++) {
    while (s.waiting.length > 0) s.waiting.shift()!();
    await flush();
    while (sent < n && !stream.paused) stream.onMessage!({ ID: BigInt(sent++ % 2 === 0 ? 7 : 404) });
  }
  assert.is(stream.written.length, n);
  assert.is(s.inFlightMax, 1, 'one renew at a time per stream');
  assert.ok(stream.pauses > 1 && stream.resumes === stream.pauses, `${stream.pauses} pauses, ${stream.resumes} resumes`);
  for (let i = 0; i < n; i++) {
    const r = stream.written[i];
    assert.equal([r.ID, r.TTL], i % 2 === 0 ? [7n, 30] : [404n, 0], `answer ${i}`);
  }
  stream.onHalfClose!();
  await done;
});

test('a half-closed stream ends once the requests before the close are answered', async () => {
  const rpc = byName('/etcdserverpb.Lease/LeaseKeepAlive') as AnyBidiRpc;
  const s = slowMember();
  const stream = new FakeStream();
  let ended = false;
  const done = (rpc.serve(s.m, stream as never, new FixedContext()) as Promise<void>).then(() => {
    ended = true;
  });
  stream.onMessage!({ ID: 1n });
  stream.onMessage!({ ID: 2n });
  stream.onHalfClose!();
  await flush();
  assert.is(ended, false);
  s.waiting.shift()!();
  await flush();
  assert.is(ended, false);
  s.waiting.shift()!();
  await done;
  assert.is(stream.written.length, 2);
});

test('a renew that fails (no leader) ends the stream with its error', async () => {
  const rpc = byName('/etcdserverpb.Lease/LeaseKeepAlive') as AnyBidiRpc;
  const m = {
    header: () => ({}),
    leaseRenew: () => Promise.reject(new EtcdError(14, 'etcdserver: no leader')),
  } as unknown as MemberApi;
  const stream = new FakeStream();
  const done = rpc.serve(m, stream as never, new FixedContext()) as Promise<void>;
  stream.onMessage!({ ID: 1n });
  try {
    await done;
    assert.unreachable('should have failed');
  } catch (err) {
    assert.is((err as EtcdError).message, 'etcdserver: no leader');
  }
});

test('a keep-alive stream that requires a leader is refused without one, and ended when the leader is lost', async () => {
  const rpc = byName('/etcdserverpb.Lease/LeaseKeepAlive') as AnyBidiRpc;
  const ctx = new FixedContext({ requireLeader: true });
  const noLeader = { hasLeader: false } as unknown as MemberApi;
  try {
    await rpc.serve(noLeader, new FakeStream() as never, ctx);
    assert.unreachable('served without a leader');
  } catch (err) {
    assert.is((err as EtcdError).message, 'etcdserver: no leader');
  }
  let lost: (() => void) | undefined;
  const m = {
    hasLeader: true,
    header: () => ({}),
    leaseRenew: () => 5,
    onLeaderLost: (fn: () => void) => {
      lost = fn;
      return () => {
        lost = undefined;
      };
    },
  } as unknown as MemberApi;
  const stream = new FakeStream();
  const done = rpc.serve(m, stream as never, ctx) as Promise<void>;
  stream.onMessage!({ ID: 1n });
  assert.is(stream.written.length, 1);
  lost!();
  try {
    await done;
    assert.unreachable('the stream outlived its leader');
  } catch (err) {
    assert.is((err as EtcdError).message, 'etcdserver: no leader');
  }
  assert.is(lost, undefined, 'the listener was removed');
});

test('time-to-live of an unknown lease answers TTL -1; a grant past the maximum TTL is refused before proposing', async () => {
  const ttl = byName('/etcdserverpb.Lease/LeaseTimeToLive') as AnyUnaryRpc;
  const m = { header: () => ({ revision: 3 }), leaseTimeToLive: async () => undefined, auth: authOff() } as unknown as MemberApi;
  assert.equal(await ttl.serve(m, { ID: 99n, keys: true }, new FixedContext()), { header: { revision: 3 }, ID: 99n, TTL: -1 });
  const grant = byName('/etcdserverpb.Lease/LeaseGrant') as AnyUnaryRpc;
  assert.throws(() => grant.validate({ TTL: 9_000_000_001, ID: 0n }, { maxTxnOps: 128, maxRequestBytes: 1 << 20 }), /too large lease TTL/);
  grant.validate({ TTL: 9_000_000_000, ID: 0n }, { maxTxnOps: 128, maxRequestBytes: 1 << 20 });
});

test.run();
