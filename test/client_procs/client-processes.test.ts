// A member with client processes (--client-workers 2), as real processes: a client process killed with
// SIGKILL under write load is replaced, clients reconnect and every acknowledged write is there; a
// connection's serializable reads never go back in revision; a request over --max-request-bytes gets
// etcd's error; a client process dies with its member.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { startTetcd, type Member } from '../helpers/member.js';
import { processAlive } from '../helpers/cleanup.js';
import { unaryCall, GrpcStatusError, KvClient } from '../helpers/grpc-kv.js';
import { KV, encodePutRequest, encodeRangeRequest, decodeRangeResponse } from '../../src/proto/rpc.js';

const WORKERS = 2;

/** The member's child processes (its client processes). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

async function waitFor(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function withMember(extraArgs: string[], body: (m: Member) => Promise<void>): Promise<void> {
  const m = await startTetcd({ extraArgs: ['--client-workers', String(WORKERS), ...extraArgs] });
  try {
    await body(m);
  } finally {
    await m.stop();
  }
}

test('a client process killed under load is replaced and no acknowledged write is lost', async () => {
  await withMember([], async (m) => {
    const pid = m.proc!.pid!;
    await waitFor('client processes', 5000, () => childPids(pid).length === WORKERS);
    const acked = new Map<string, string>();
    let failures = 0;
    let stop = false;
    // Writers on their own connections; a broken connection is replaced, as clients do.
    const writer = async (w: number): Promise<void> => {
      let kv = new KvClient(m.endpoint);
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const value = `v${i}`;
        try {
          await kv.put(Buffer.from(key), Buffer.from(value), 3000);
          acked.set(key, value);
        } catch {
          failures++;
          kv.close();
          kv = new KvClient(m.endpoint);
        }
      }
      kv.close();
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await waitFor('writes before the kill', 10_000, () => acked.size >= 200);
    const victim = childPids(pid)[0];
    process.kill(victim, 'SIGKILL');
    const ackedAtKill = acked.size;
    await waitFor('the replacement', 10_000, () => !processAlive(victim) && childPids(pid).filter((p) => p !== victim).length === WORKERS);
    await waitFor('writes after the kill', 10_000, () => acked.size >= ackedAtKill + 500);
    stop = true;
    await Promise.all(writers);
    assert.ok(m.running(), 'the member kept running');
    const kv = new KvClient(m.endpoint);
    try {
      const all = await kv.range(Buffer.from('w'), Buffer.from('x'), 10_000);
      const stored = new Map(all.kvs.map((r) => [r.key.toString(), r.value.toString()]));
      for (const [k, v] of acked) assert.is(stored.get(k), v, `acknowledged ${k} is stored`);
    } finally {
      kv.close();
    }
    assert.ok(failures < 200, `few calls fail while a client process is replaced (${failures})`);
  });
});

test('serializable reads on one connection never go back in revision', async () => {
  await withMember([], async (m) => {
    const key = Buffer.from('mono');
    let stop = false;
    const writer = (async () => {
      const kv = new KvClient(m.endpoint);
      for (let i = 0; !stop; i++) await kv.put(key, Buffer.from(String(i)), 3000);
      kv.close();
    })();
    const reader = async (): Promise<number> => {
      const session = http2.connect(m.clientUrl);
      session.on('error', () => {});
      let last = 0;
      let lastMod = 0;
      let reads = 0;
      try {
        const body = encodeRangeRequest({ key, serializable: true });
        for (; reads < 400; reads++) {
          const r = decodeRangeResponse(await unaryCall(session, KV.methods.Range.path, body, 3000));
          const rev = r.header?.revision ?? 0;
          const mod = r.kvs[0]?.mod_revision ?? 0;
          assert.ok(rev >= last, `revision went from ${last} to ${rev}`);
          assert.ok(mod >= lastMod, `mod_revision went from ${lastMod} to ${mod}`);
          last = rev;
          lastMod = mod;
        }
      } finally {
        session.destroy();
      }
      return last;
    };
    const finals = await Promise.all([reader(), reader(), reader(), reader()]);
    stop = true;
    await writer;
    assert.ok(
      finals.every((r) => r > 1),
      'the reads saw the writes',
    );
  });
});

test("a request over --max-request-bytes gets etcd's error, and the member still serves", async () => {
  await withMember(['--max-request-bytes', '4096'], async (m) => {
    const session = http2.connect(m.clientUrl);
    session.on('error', () => {});
    try {
      let err: unknown;
      try {
        await unaryCall(session, KV.methods.Put.path, encodePutRequest({ key: Buffer.from('big'), value: Buffer.alloc(5000, 1) }), 5000);
      } catch (e) {
        err = e;
      }
      assert.instance(err, GrpcStatusError);
      assert.is((err as GrpcStatusError).code, 3);
      assert.is((err as GrpcStatusError).message, 'etcdserver: request is too large');
      await unaryCall(session, KV.methods.Put.path, encodePutRequest({ key: Buffer.from('small'), value: Buffer.alloc(100, 1) }), 5000);
    } finally {
      session.destroy();
    }
  });
});

test('client processes exit with their member, even when it is killed', async () => {
  const m = await startTetcd({ extraArgs: ['--client-workers', String(WORKERS)] });
  const pid = m.proc!.pid!;
  await waitFor('client processes', 5000, () => childPids(pid).length === WORKERS);
  const kids = childPids(pid);
  await m.kill();
  await waitFor('client processes to exit', 5000, () => kids.every((k) => !processAlive(k)));
  // The port is free again: a restarted member serves on it.
  await m.start();
  await waitFor('client processes after restart', 5000, () => childPids(m.proc!.pid!).length === WORKERS);
  await m.stop();
});

test.run();
