// Mutual exclusion under contention, through the Lock service and through the `etcd3` npm client's lock
// recipe. Every critical section is fenced: its writes are a txn that holds only while the holder's lock key
// still has the create revision it was granted with, so a holder that was paused past its lease's TTL cannot
// write any more. The checker sees every fenced write: entering must find the section empty, leaving must
// find itself in it. One holder dies while holding (its connection closes, its keep-alives stop): the others
// must get the lock once its lease expires. One holder pauses past its TTL: its late fenced write must fail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3 } from 'etcd3';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeLockResponse, encodeLockRequest, encodeUnlockRequest } from '../../src/proto/v3lock.js';
import {
  decodeLeaseGrantResponse,
  decodeRangeResponse,
  decodeTxnResponse,
  encodeLeaseGrantRequest,
  encodeLeaseKeepAliveRequest,
  encodeRangeRequest,
  encodeTxnRequest,
  type TxnRequestInit,
} from '../../src/proto/rpc.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runningChildren, track } from '../helpers/cleanup.js';
import { startCluster, startTetcd } from '../helpers/member.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const b = (s: string): Buffer => Buffer.from(s);

const LEASE_TTL_S = 2;
const CMP_EQUAL = 0;
const CMP_TARGET_CREATE = 1;

/** One client of the Lock service: its own connection, lease and keep-alive stream. */
class LockClient {
  private readonly client: grpc.Client;
  private keepAlive: grpc.ClientDuplexStream<Uint8Array, Buffer> | undefined;
  private timer: NodeJS.Timeout | undefined;
  lease = 0n;

  constructor(
    endpoint: string,
    readonly name: string,
  ) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
  }

  private unary(path: string, body: Uint8Array, deadlineMs = 30_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path,
        (x: Uint8Array) => Buffer.from(x),
        (x: Buffer) => x,
        body,
        { deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  async start(): Promise<void> {
    this.lease = decodeLeaseGrantResponse(
      await this.unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: LEASE_TTL_S })),
    ).ID;
    this.keepAlive = this.client.makeBidiStreamRequest(
      '/etcdserverpb.Lease/LeaseKeepAlive',
      (x: Uint8Array) => Buffer.from(x),
      (x: Buffer) => x,
    );
    this.keepAlive.on('error', () => {});
    this.keepAlive.on('data', () => {});
    const beat = (): void => {
      this.keepAlive?.write(encodeLeaseKeepAliveRequest({ ID: this.lease }));
    };
    beat();
    this.timer = setInterval(beat, 400);
  }

  /** Stops renewing the lease (a paused or dead process). */
  stopKeepAlive(): void {
    clearInterval(this.timer);
    this.keepAlive?.cancel();
    this.keepAlive = undefined;
  }

  /** Acquires the lock: the ownership key and the create revision that fences this holder's writes. */
  async lock(name: string): Promise<{ key: Buffer; createRev: number }> {
    const res = decodeLockResponse(await this.unary('/v3lockpb.Lock/Lock', encodeLockRequest({ name: b(name), lease: this.lease })));
    const key = Buffer.from(res.key);
    const r = decodeRangeResponse(await this.unary('/etcdserverpb.KV/Range', encodeRangeRequest({ key })));
    return { key, createRev: r.kvs[0]?.create_revision ?? -1 };
  }

  async unlock(key: Buffer): Promise<void> {
    await this.unary('/v3lockpb.Lock/Unlock', encodeUnlockRequest({ key }));
  }

  /** Puts `value` on `key` only while the lock key still has `createRev`; the previous value, or undefined when fenced off. */
  async fencedPut(lock: { key: Buffer; createRev: number }, key: string, value: string): Promise<string | undefined> {
    const txn: TxnRequestInit = {
      compare: [{ key: lock.key, target: CMP_TARGET_CREATE, result: CMP_EQUAL, create_revision: lock.createRev }],
      success: [{ request_put: { key: b(key), value: b(value), prev_kv: true } }],
    };
    const r = decodeTxnResponse(await this.unary('/etcdserverpb.KV/Txn', encodeTxnRequest(txn)));
    if (!r.succeeded) return undefined;
    const prev = r.responses[0].response_put?.prev_kv;
    return prev === undefined ? '' : Buffer.from(prev.value).toString();
  }

  close(): void {
    this.stopKeepAlive();
    this.client.close();
  }
}

/** Critical sections a run must complete (the lock service makes progress). */
const SECTIONS_MIN = 20;

/** What the checker saw: violations of exclusion, and how many sections completed. */
interface Tally {
  sections: number;
  violations: string[];
  /** Holders that left 'owner' set without leaving (died, or were fenced off): the next entry may find each once. */
  abandoned: Set<string>;
}

async function section(c: LockClient, lock: { key: Buffer; createRev: number }, tally: Tally): Promise<void> {
  const before = await c.fencedPut(lock, 'owner', c.name);
  if (before === undefined) {
    tally.violations.push(`${c.name} was fenced off entering a lock it was just granted`);
    return;
  }
  if (before !== '' && !tally.abandoned.delete(before)) tally.violations.push(`${c.name} entered while ${before} was inside`);
  await sleep(Math.random() * 15);
  const during = await c.fencedPut(lock, 'owner', '');
  if (during !== undefined && during !== c.name) tally.violations.push(`${c.name} left and found ${during} inside`);
  tally.sections++;
}

async function exclusionRun(endpoints: readonly string[]): Promise<void> {
  const tally: Tally = { sections: 0, violations: [], abandoned: new Set() };
  const clients = Array.from({ length: 5 }, (_, i) => new LockClient(endpoints[i % endpoints.length], `c${i}`));
  for (const c of clients) await c.start();
  // At least 6 s of contention, longer on a loaded machine until SECTIONS_MIN sections ran (at most 30 s).
  const deadline = Date.now() + 6_000;
  const hardDeadline = Date.now() + 30_000;
  const running = () => Date.now() < deadline || (tally.sections < SECTIONS_MIN && Date.now() < hardDeadline);
  let deadHolderAt = 0;
  let nextAfterDeath = 0;
  let pausedFenced: boolean | undefined;
  const loops = clients.map(async (c, i) => {
    let round = 0;
    while (running()) {
      const lock = await c.lock('mutex');
      if (deadHolderAt !== 0 && nextAfterDeath === 0) nextAfterDeath = Date.now();
      round++;
      if (i === 0 && round === 3) {
        // Dies holding the lock: no unlock, no keep-alive, connection gone.
        tally.abandoned.add(c.name);
        await c.fencedPut(lock, 'owner', c.name);
        c.close();
        deadHolderAt = Date.now();
        return;
      }
      if (i === 1 && round === 4) {
        // Paused past its TTL while holding: its lease expires, another client takes over, and its late
        // write must be fenced off.
        tally.abandoned.add(c.name);
        await c.fencedPut(lock, 'owner', c.name);
        c.stopKeepAlive();
        await sleep((LEASE_TTL_S + 2) * 1000);
        pausedFenced = (await c.fencedPut(lock, 'owner', '')) === undefined;
        return;
      }
      await section(c, lock, tally);
      await c.unlock(lock.key);
    }
  });
  await Promise.all(loops);
  for (const c of clients) c.close();
  assert.equal(tally.violations, [], 'no two holders in the critical section');
  assert.ok(tally.sections >= SECTIONS_MIN, `progress: ${tally.sections} critical sections`);
  assert.ok(deadHolderAt > 0 && nextAfterDeath > 0, 'someone got the lock after its holder died');
  assert.ok(
    nextAfterDeath - deadHolderAt >= LEASE_TTL_S * 1000 - 500,
    `not before the dead holder's lease expired (${nextAfterDeath - deadHolderAt} ms)`,
  );
  assert.is(pausedFenced, true, 'a holder paused past its TTL is fenced off');
}

test('Lock service: one holder at a time, hand-over when a holder dies, a paused holder fenced off', async () => {
  const m = await startTetcd({ name: 'm1' });
  try {
    await exclusionRun([m.endpoint]);
  } finally {
    await m.stop();
  }
});

test('Lock service on 3 members: clients on every member, waits and hand-over across them', async () => {
  const ms = await startCluster('tetcd', ['m1', 'm2', 'm3']);
  try {
    await exclusionRun(ms.map((m) => m.endpoint));
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

test('a holder process SIGKILLed while holding: the lock passes on once its lease expires, not before', async () => {
  const m = await startTetcd({ name: 'm1' });
  const keepAlive = setInterval(() => {}, 1000); // the tracked child is unref'd
  const waiter = new LockClient(m.endpoint, 'waiter');
  try {
    const holder = track(
      spawn(
        process.execPath,
        [fileURLToPath(new URL('../helpers/lock_holder.js', import.meta.url)), m.endpoint, 'killed', String(LEASE_TTL_S)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      ),
    );
    const heldKey = await new Promise<string>((resolve, reject) => {
      let out = '';
      holder.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /^locked (\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      holder.once('exit', (code) => reject(new Error(`the holder exited (${code}) before it held the lock`)));
    });
    await waiter.start();
    let acquiredAt = 0;
    const acquired = waiter.lock('killed').then((l) => {
      acquiredAt = Date.now();
      return l;
    });
    await sleep(300);
    assert.is(acquiredAt, 0, 'the waiter waits while the holder lives');
    const killedAt = Date.now();
    holder.kill('SIGKILL');
    const lock = await acquired;
    assert.ok(acquiredAt - killedAt >= LEASE_TTL_S * 1000 - 500, `not before the holder's lease expired (${acquiredAt - killedAt} ms)`);
    assert.ok(acquiredAt - killedAt < (LEASE_TTL_S + 3) * 1000, `soon after it expired (${acquiredAt - killedAt} ms)`);
    assert.is(await waiter.fencedPut(lock, 'owner', 'waiter'), '', "the new holder's fenced write holds");
    assert.not.equal(lock.key.toString(), heldKey);
  } finally {
    clearInterval(keepAlive);
    waiter.close();
    await m.stop();
  }
});

test("the etcd3 client's lock recipe: one holder at a time", async () => {
  const m = await startTetcd({ name: 'm1' });
  const clients = Array.from({ length: 4 }, () => new Etcd3({ hosts: `http://${m.endpoint}` }));
  let inside = 0;
  let overlaps = 0;
  let sections = 0;
  let failedTries = 0;
  try {
    // 3 s of contention, longer on a loaded machine until SECTIONS_MIN sections ran (at most 20 s).
    const deadline = Date.now() + 3_000;
    const hardDeadline = Date.now() + 20_000;
    await Promise.all(
      clients.map(async (c) => {
        while (Date.now() < deadline || (sections < SECTIONS_MIN && Date.now() < hardDeadline)) {
          try {
            await c
              .lock('recipe')
              .ttl(LEASE_TTL_S)
              .do(async () => {
                if (++inside !== 1) overlaps++;
                await sleep(Math.random() * 10);
                inside--;
                sections++;
              });
          } catch {
            failedTries++; // etcd3's lock fails at once when it is held; try again
            await sleep(Math.random() * 10);
          }
        }
      }),
    );
  } finally {
    for (const c of clients) c.close();
    await m.stop();
  }
  assert.is(overlaps, 0, 'no two holders at once');
  assert.ok(sections >= SECTIONS_MIN, `progress: ${sections} sections (${failedTries} tries found it held)`);
  assert.ok(failedTries > 0, 'the clients contended');
  assert.is(runningChildren(), 0);
});

test.run();
