// A client process killed with SIGKILL mid-stream, as real processes: the member ends that process's
// streams (their producers are told, UNAVAILABLE) and nothing else; another client process's streams
// carry on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS } from '../../src/client_procs/member_channel.js';
import { newLogger } from '../../src/log.js';
import { tempDir, track, awaitWithTimer } from '../helpers/cleanup.js';
import { FAKE_SERVER, TestMethods, probes, testChannelMethods, type Probe } from './fixtures/test_rpcs.js';
import { RawStream, connect } from './fixtures/raw_stream.js';

const CLIENT_ENTRY = fileURLToPath(new URL('./fixtures/stream_client.js', import.meta.url));
const log = newLogger('fatal');
const HTTP = { healthy: async () => true, metricsText: () => '' };

interface ClientProc {
  child: ChildProcess;
  channel: MemberChannel;
  closed: Promise<void>;
  port: number;
}

async function startClient(server: net.Server, path: string): Promise<ClientProc> {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const child = track(fork(CLIENT_ENTRY, [path], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await awaitWithTimer(
    new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port))),
    10_000,
    'client process start',
  );
  const socket = await awaitWithTimer(accepted, 10_000, 'channel connection');
  const channel = new MemberChannel(socket, FAKE_SERVER, HTTP, log, MEMBER_CHANNEL_DEFAULTS, { methods: testChannelMethods() });
  const closed = new Promise<void>((r) => {
    channel.onClose = r;
  });
  return { child, channel, closed, port };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a client process killed mid-stream ends only its own streams on the member', async () => {
  const path = join(tempDir('tetcd-kill-'), 'channel.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const a = await startClient(server, path);
  const b = await startClient(server, path);
  const sa = await connect(a.port);
  const sb = await connect(b.port);
  sa.on('error', () => {});
  try {
    const opened = (s: typeof sa, text: string): Promise<{ stream: RawStream; probe: Probe }> => {
      const before = probes.length;
      const stream = RawStream.open(s, TestMethods.Echo.path);
      stream.send({ n: 1, text });
      return waitFor('an echo', () => stream.messages.length === 1 && probes.length > before).then(() => ({
        stream,
        probe: probes[probes.length - 1],
      }));
    };
    const a1 = await opened(sa, 'a1');
    const a2 = await opened(sa, 'a2');
    const b1 = await opened(sb, 'b1');
    assert.is(a.channel.streamsOpen, 2);
    assert.is(b.channel.streamsOpen, 1);

    a.child.kill('SIGKILL');
    await awaitWithTimer(a.closed, 10_000, 'channel A to close');
    for (const { probe } of [a1, a2]) {
      assert.is(probe.cancel?.code, 14, "A's streams were ended on the member (UNAVAILABLE)");
    }
    assert.is(a.channel.streamsOpen, 0);
    assert.is(b1.probe.cancel, undefined, "B's stream was not touched");
    assert.is(b.channel.streamsOpen, 1);

    b1.stream.send({ n: 2, text: 'still here' });
    await waitFor('another echo', () => b1.stream.messages.length === 2);
    assert.is(b1.stream.messages[1].text, 'echo:still here');
    b1.stream.halfClose();
    assert.is((await b1.stream.status).code, 0);
  } finally {
    sa.destroy();
    sb.destroy();
    b.child.kill('SIGKILL');
    a.child.kill('SIGKILL');
    server.close();
  }
});

test.run();
