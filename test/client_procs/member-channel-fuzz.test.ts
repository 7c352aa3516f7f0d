// Whatever a client process sends, the member survives: a seeded run of valid frame sequences with bytes
// flipped, frames cut short and kinds changed goes to a member channel; nothing may throw out of it, and a
// channel that saw a malformed frame is closed with its streams ended.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Duplex } from 'node:stream';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS } from '../../src/client_procs/member_channel.js';
import { MEMBER_STREAM_DEFAULTS } from '../../src/client_procs/member_stream.js';
import { FrameWriter, FrameKind, ContextSizer, type WireContext } from '../../src/client_procs/channel.js';
import { newLogger } from '../../src/log.js';
import { encodeEcho } from '../api/helpers.js';
import { rng } from '../../tools/lib/rng.js';
import { FAKE_SERVER, TestMethods, TEST_METHOD_IDS, testChannelMethods } from './fixtures/test_rpcs.js';

const log = newLogger('fatal');
const HTTP = { healthy: async () => true, metricsText: () => '' };
const SEEDS = 300;

/** The bytes of a plausible client-process conversation: calls, streams, messages, credit, cancel. */
function conversation(): Buffer {
  const out: Buffer[] = [];
  const sink = new Duplex({
    read() {},
    write(c: Buffer, _e, cb) {
      out.push(Buffer.from(c));
      cb();
    },
  });
  const w = new FrameWriter(sink);
  const ctx: WireContext = { token: 'tok', certCommonName: undefined, peerAddress: '127.0.0.1', requireLeader: false };
  const sizer = new ContextSizer();
  sizer.size(ctx);
  const ctxId = TEST_METHOD_IDS.get(TestMethods.Ctx.path)!;
  const countId = TEST_METHOD_IDS.get(TestMethods.Count.path)!;
  const echoId = TEST_METHOD_IDS.get(TestMethods.Echo.path)!;
  w.writeCall(1, ctxId, 0, encodeEcho({ n: 1 }));
  w.writeCallWithContext(FrameKind.Call, 2, ctxId, 500, ctx, sizer, encodeEcho({ n: 2 }));
  w.writeCallWithContext(FrameKind.Open, 1, countId, 0, ctx, sizer, encodeEcho({ n: 3, text: 'polite' }));
  w.writeCallWithContext(FrameKind.Open, 2, echoId, 0, ctx, sizer, new Uint8Array(0));
  w.writeMessage(2, encodeEcho({ n: 1, text: 'a' }));
  w.writeCredit(1, 1024);
  w.writeMessage(2, encodeEcho({ n: 2, text: 'b' }));
  w.writeHalfClose(2);
  w.writeStatus(FrameKind.Cancel, 1, 1, 'context canceled');
  w.writeCall(3, 0xff00, 0, new Uint8Array(0));
  w.flush();
  return Buffer.concat(out);
}

test('mutated frame sequences never throw out of the member channel', async () => {
  const base = conversation();
  let closedChannels = 0;
  const thrown: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    thrown.push(err);
  };
  process.on('uncaughtException', onUncaught);
  try {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const rand = rng(seed);
      const input = Buffer.from(base);
      const flips = 1 + Math.floor(rand() * 6);
      for (let i = 0; i < flips; i++) input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256);
      const cut = rand() < 0.3 ? Math.floor(rand() * input.length) : input.length;
      const socket = new Duplex({
        read() {},
        write(_c, _e, cb) {
          cb();
        },
      });
      const ch = new MemberChannel(socket, FAKE_SERVER, HTTP, log, MEMBER_CHANNEL_DEFAULTS, {
        methods: testChannelMethods(),
        streamLimits: { ...MEMBER_STREAM_DEFAULTS, streamQueueBytesMax: 64 * 1024 },
      });
      let closed = false;
      ch.onClose = () => {
        closed = true;
      };
      // Feed in random pieces, as a socket would.
      let at = 0;
      while (at < cut) {
        const n = 1 + Math.floor(rand() * 64);
        socket.emit('data', input.subarray(at, Math.min(cut, at + n)));
        at += n;
      }
      await new Promise((r) => setImmediate(r));
      if (closed) {
        closedChannels++;
        assert.is(ch.streamsOpen, 0, `seed ${seed}: a closed channel keeps no streams`);
      }
      ch.destroy();
      assert.is(ch.streamsOpen, 0);
    }
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  assert.equal(thrown, [], 'nothing escaped');
  assert.ok(closedChannels > 0, 'some mutations were caught as malformed');
});

test.run();
