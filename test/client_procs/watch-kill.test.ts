// A client process killed with SIGKILL while it holds Watch streams (a member with --client-workers 2, as
// real processes): the streams of the killed process end, the other process's watchers carry on without a
// break, and a watcher whose stream broke and that reconnects with start_revision = last + 1 sees every
// revision exactly once, in order, like the ones that never broke.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchResponse } from '../../src/proto/rpc.js';
import { startTetcd } from '../helpers/member.js';
import { processAlive } from '../helpers/cleanup.js';
import { KvClient, prefixEnd } from '../helpers/grpc-kv.js';

const WORKERS = 2;
const WATCHERS = 8;
const PREFIX = Buffer.from('kill/');

// This file pins the mode itself.
delete process.env.TETCD_CLIENT_WORKERS;

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

/** One logical watcher: a stream on a connection of its own, reopened from last + 1 whenever it breaks. */
class Watcher {
  revs: number[] = [];
  breaks = 0;
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<Uint8Array, WatchResponse> | undefined;
  private stopped = false;

  constructor(
    private readonly endpoint: string,
    private readonly n: number,
    private next: number,
  ) {}

  open(): void {
    if (this.stopped) return;
    // A connection of its own (its own subchannel pool), so watchers spread over the client processes.
    this.client = new grpc.Client(this.endpoint, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'tetcd.test.watcher': `${this.n}-${this.breaks}`,
    });
    const call = this.client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
      '/etcdserverpb.Watch/Watch',
      (b) => Buffer.from(b),
      (b) => decodeWatchResponse(b),
    );
    this.call = call;
    call.on('data', (r: WatchResponse) => {
      for (const e of r.events) {
        this.revs.push(e.kv!.mod_revision);
        this.next = e.kv!.mod_revision + 1;
      }
    });
    call.on('error', () => this.broke(call));
    call.on('end', () => this.broke(call));
    call.write(encodeWatchRequest({ create_request: { key: PREFIX, range_end: prefixEnd(PREFIX), start_revision: this.next } }));
  }

  private broke(call: unknown): void {
    if (call !== this.call || this.stopped) return;
    this.call = undefined;
    this.breaks++;
    this.client?.close();
    setTimeout(() => this.open(), 100);
  }

  stop(): void {
    this.stopped = true;
    this.call?.cancel();
    this.client?.close();
  }
}

test('a killed client process takes only its own watch streams; reconnecting from last + 1 loses nothing', async () => {
  const m = await startTetcd({ extraArgs: ['--client-workers', String(WORKERS)] });
  const watchers: Watcher[] = [];
  try {
    const pid = m.proc!.pid!;
    await waitFor('client processes', 5000, () => childPids(pid).length === WORKERS);
    let kv = new KvClient(m.endpoint);
    const firstRev = Number((await kv.range(Buffer.from('x'), null, 5000)).revision) + 1;
    for (let i = 0; i < WATCHERS; i++) {
      const w = new Watcher(m.endpoint, i, firstRev);
      watchers.push(w);
      w.open();
    }
    let stop = false;
    let puts = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await kv.put(Buffer.from(`kill/${i % 13}`), Buffer.from(String(i)), 3000);
          puts++;
        } catch {
          kv.close();
          kv = new KvClient(m.endpoint);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await waitFor('events before the kill', 10_000, () => watchers.every((w) => w.revs.length >= 50));
    const victim = childPids(pid)[0];
    process.kill(victim, 'SIGKILL');
    const putsAtKill = puts;
    await waitFor('the replacement', 10_000, () => !processAlive(victim) && childPids(pid).filter((p) => p !== victim).length === WORKERS);
    await waitFor('writes after the kill', 10_000, () => puts >= putsAtKill + 200);
    stop = true;
    await writer;
    const last = Number((await kv.range(Buffer.from('x'), null, 5000)).revision);
    kv.close();
    await waitFor('every watcher at the last revision', 10_000, () => watchers.every((w) => w.revs.at(-1) === last));
    const broken = watchers.filter((w) => w.breaks > 0).length;
    assert.ok(broken > 0 && broken < WATCHERS, `${broken} of ${WATCHERS} watch streams broke (those of the killed process only)`);
    const want = Array.from({ length: last - firstRev + 1 }, (_, i) => firstRev + i);
    for (const [i, w] of watchers.entries()) assert.equal(w.revs, want, `watcher ${i} (${w.breaks} breaks) saw every revision once`);
    assert.ok(m.running(), 'the member kept running');
  } finally {
    for (const w of watchers) w.stop();
    await m.stop();
  }
});

test.run();
