// The client process's forwarding, against a scripted member on the other end of a real socket: valid
// calls travel as their exact bytes and come back as the member's reply; bad input, requests over
// --max-request-bytes and calls over the in-flight limit are refused here without reaching the member.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import http2 from 'node:http2';
import { join } from 'node:path';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { Forwarder, FORWARDER_DEFAULTS, proposalBytes, requestIdBytes } from '../../src/client_procs/forwarder.js';
import { FrameKind, FrameReader, FrameWriter, CALL_HEAD_BYTES, REPLY_HEAD_BYTES, type FrameSink } from '../../src/client_procs/channel.js';
import { METHOD_IDS } from '../../src/client_procs/methods.js';
import { KV, encodePutRequest, encodePutResponse, encodeRangeRequest, decodePutResponse } from '../../src/proto/rpc.js';
import { encodeProposal } from '../../src/server/proposal.js';
import { IdGenerator } from '../../src/server/idgen.js';
import { unaryCall, GrpcStatusError } from '../helpers/grpc-kv.js';
import { tempDir } from '../helpers/cleanup.js';

const MEMBER_ID = 0x8e9e05c52164694dn;
const PUT = METHOD_IDS.get(KV.methods.Put.path);
const RANGE = METHOD_IDS.get(KV.methods.Range.path);

interface SeenCall {
  callId: number;
  method: number;
  body: Buffer;
}

/** The member's end, scripted by the test: records calls and answers them as told. */
class FakeMember implements FrameSink {
  calls: SeenCall[] = [];
  answer: ((c: SeenCall, w: FrameWriter) => void) | undefined;
  readonly writer: FrameWriter;
  private readonly reader = new FrameReader(this);
  constructor(readonly socket: net.Socket) {
    this.writer = new FrameWriter(socket);
    socket.on('data', (c: Buffer) => this.reader.push(c));
  }
  onFrame(buf: Buffer, start: number, end: number): void {
    assert.is(buf[start], FrameKind.Call);
    const c = {
      callId: buf.readUInt32BE(start + 1),
      method: buf.readUInt16BE(start + 5),
      body: Buffer.from(buf.subarray(start + CALL_HEAD_BYTES - 4, end)),
    };
    this.calls.push(c);
    this.answer?.(c, this.writer);
  }
  onBadFrame(reason: string): void {
    throw new Error(reason);
  }
}

function reply(w: FrameWriter, callId: number, message: Uint8Array): void {
  const n = REPLY_HEAD_BYTES + 5 + message.length;
  const at = w.reserve(n);
  w.buf.writeUInt32BE(n - 4, at);
  w.buf[at + 4] = FrameKind.Reply;
  w.buf.writeUInt32BE(callId, at + 5);
  w.buf[at + 9] = 0;
  w.buf.writeUInt32BE(message.length, at + 10);
  w.buf.set(message, at + 14);
}

interface Rig {
  member: FakeMember;
  fwd: Forwarder;
  session: http2.ClientHttp2Session;
  close(): Promise<void>;
}

async function rig(maxRequestBytes: number, callsInFlightMax = 1000): Promise<Rig> {
  const path = join(tempDir('tetcd-fwd-'), 'channel.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const clientSide = net.connect(path);
  const memberSide = await accepted;
  const member = new FakeMember(memberSide);
  const fwd = new Forwarder(
    clientSide,
    { maxTxnOps: 128, maxRequestBytes },
    { memberId: MEMBER_ID },
    { ...FORWARDER_DEFAULTS, callsInFlightMax, callQueueBytesMax: 1 << 20 },
  );
  const grpc = new GrpcServer({ maxRecvMessageBytes: maxRequestBytes + 512 * 1024 });
  fwd.register(grpc);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc });
  const session = http2.connect(listener.url);
  session.on('error', () => {});
  return {
    member,
    fwd,
    session,
    async close() {
      session.destroy();
      await grpc.shutdown({ graceful: false });
      await listener.close(100);
      clientSide.destroy();
      memberSide.destroy();
      server.close();
    },
  };
}

async function failure(p: Promise<unknown>): Promise<GrpcStatusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GrpcStatusError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

test('proposalBytes matches the envelope the member encodes', () => {
  const ids = new IdGenerator(MEMBER_ID, Date.now());
  for (const valueBytes of [0, 1, 100, 127, 128, 16_000, 1 << 20]) {
    const put = { key: Buffer.from('key'), value: Buffer.alloc(valueBytes, 1) };
    const body = encodePutRequest(put);
    const exact = encodeProposal(ids.next(), { put }).length;
    assert.is(proposalBytes(body.length, requestIdBytes(MEMBER_ID)), exact, `value of ${valueBytes} bytes`);
  }
});

test('a valid call reaches the member as its exact bytes and the reply answers it', async () => {
  const r = await rig(4096);
  try {
    const resp = encodePutResponse({ header: { cluster_id: 1n, member_id: MEMBER_ID, revision: 42, raft_term: 3 } });
    r.member.answer = (c, w) => reply(w, c.callId, resp);
    const body = encodePutRequest({ key: Buffer.from('k1'), value: Buffer.from('v1') });
    const got = await unaryCall(r.session, KV.methods.Put.path, body, 5000);
    assert.is(decodePutResponse(got).header?.revision, 42);
    assert.is(r.member.calls.length, 1);
    assert.is(r.member.calls[0].method, PUT);
    assert.ok(r.member.calls[0].body.equals(Buffer.from(body)));
  } finally {
    await r.close();
  }
});

test('a Fail frame becomes the call status', async () => {
  const r = await rig(4096);
  try {
    r.member.answer = (c, w) => w.writeFail(c.callId, 14, 'etcdserver: no leader');
    const err = await failure(
      unaryCall(r.session, KV.methods.Put.path, encodePutRequest({ key: Buffer.from('k'), value: Buffer.from('v') }), 5000),
    );
    assert.is(err.code, 14);
    assert.is(err.message, 'etcdserver: no leader');
  } finally {
    await r.close();
  }
});

test('bad input and requests over --max-request-bytes are refused in the client process', async () => {
  const r = await rig(1024);
  try {
    r.member.answer = (c, w) => reply(w, c.callId, encodePutResponse({}));
    const empty = await failure(unaryCall(r.session, KV.methods.Put.path, encodePutRequest({ value: Buffer.from('v') }), 5000));
    assert.is(empty.code, 3);
    assert.is(empty.message, 'etcdserver: key is not provided');
    const big = await failure(
      unaryCall(r.session, KV.methods.Put.path, encodePutRequest({ key: Buffer.from('k'), value: Buffer.alloc(1100) }), 5000),
    );
    assert.is(big.code, 3);
    assert.is(big.message, 'etcdserver: request is too large');
    assert.is(r.member.calls.length, 0, 'nothing reached the member');
    // Just under the limit goes through; a large Range is no proposal and is not refused.
    let value = 0;
    while (
      proposalBytes(encodePutRequest({ key: Buffer.from('k'), value: Buffer.alloc(value + 1) }).length, requestIdBytes(MEMBER_ID)) <= 1024
    )
      value++;
    await unaryCall(r.session, KV.methods.Put.path, encodePutRequest({ key: Buffer.from('k'), value: Buffer.alloc(value) }), 5000);
    await unaryCall(r.session, KV.methods.Range.path, encodeRangeRequest({ key: Buffer.alloc(2000, 1) }), 5000);
    assert.equal(
      r.member.calls.map((c) => c.method),
      [PUT, RANGE],
    );
  } finally {
    await r.close();
  }
});

test('calls over the in-flight limit get ErrTooManyRequests; the member going away fails the rest', async () => {
  const r = await rig(4096, 3);
  try {
    const body = encodePutRequest({ key: Buffer.from('k'), value: Buffer.from('v') });
    const waiting = [0, 1, 2].map(() =>
      unaryCall(r.session, KV.methods.Put.path, body, 5000).then(
        () => 0,
        (e: GrpcStatusError) => e.code,
      ),
    );
    while (r.member.calls.length < 3) await new Promise((res) => setTimeout(res, 5));
    const over = await failure(unaryCall(r.session, KV.methods.Put.path, body, 5000));
    assert.is(over.code, 8);
    assert.is(over.message, 'etcdserver: too many requests');
    assert.is(r.fwd.callsInFlight, 3);
    r.member.socket.destroy();
    assert.equal(await Promise.all(waiting), [14, 14, 14], 'UNAVAILABLE: clients retry elsewhere');
  } finally {
    await r.close();
  }
});

test.run();
