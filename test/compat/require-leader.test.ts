// Streams that require a leader (metadata `hasleader: true`, clientv3's WithRequireLeader, which Kubernetes
// sets on its watches): on a member that lost its leader, Watch and LeaseKeepAlive streams end with UNAVAILABLE
// `etcdserver: no leader` after a few election timeouts, a new one is refused at once, and streams without the
// metadata stay. Checked against a 3-member etcd 3.4 and a 3-member tetcd, both with two members killed; with
// TETCD_CLIENT_WORKERS=2 the keep-alive streams are served by the client processes, which must end them just
// the same.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import {
  Lease,
  decodeLeaseGrantResponse,
  decodeLeaseKeepAliveResponse,
  decodeWatchResponse,
  encodeLeaseGrantRequest,
  encodeLeaseKeepAliveRequest,
  encodeWatchRequest,
} from '../../src/proto/rpc.js';
import { awaitWithTimer, runningChildren } from '../helpers/cleanup.js';
import { startCluster, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const FLAGS = ['--heartbeat-interval', '100', '--election-timeout', '500'];
const LEASE_ID = 0x77n;

interface Ended {
  code: number;
  details: string;
}

interface StreamOutcome {
  /** The require-leader stream's end: its status code and message. */
  ended: Ended;
  /** A require-leader stream opened after the leader was lost. */
  refused: Ended;
  /** The plain stream was still open when the other ended. */
  plainOpen: boolean;
  /** What the require-leader stream's first response said before the members were killed. */
  first: string;
}

interface Kind {
  path: string;
  request: () => Uint8Array;
  /** The first response, summarised ('' for a response that is not the awaited first one). */
  first: (b: Buffer) => string;
}

const WATCH: Kind = {
  path: '/etcdserverpb.Watch/Watch',
  request: () => encodeWatchRequest({ create_request: { key: Buffer.from('k') } }),
  first: (b) => (decodeWatchResponse(b).created ? 'created' : ''),
};

const KEEPALIVE: Kind = {
  path: Lease.methods.LeaseKeepAlive.path,
  request: () => encodeLeaseKeepAliveRequest({ ID: LEASE_ID }),
  first: (b) => `TTL ${decodeLeaseKeepAliveResponse(b).TTL}`,
};

function open(client: grpc.Client, kind: Kind, requireLeader: boolean) {
  const md = new grpc.Metadata();
  if (requireLeader) md.set('hasleader', 'true');
  const call = client.makeBidiStreamRequest<Uint8Array, Buffer>(
    kind.path,
    (b) => Buffer.from(b),
    (b) => b,
    md,
  );
  let answered!: (v: string) => void;
  const first = new Promise<string>((r) => {
    answered = r;
  });
  call.on('data', (b: Buffer) => {
    const s = kind.first(b);
    if (s !== '') answered(s);
  });
  let open = true;
  const ended = new Promise<Ended>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => {
      open = false;
      answered('ended first');
      resolve({ code: err.code, details: err.details });
    });
    call.on('end', () => {
      open = false;
      answered('ended first');
      resolve({ code: 0, details: '' });
    });
  });
  call.write(kind.request());
  return { call, ended, first, isOpen: () => open };
}

function grant(client: grpc.Client, id: bigint, ttlSec: number): Promise<bigint> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<Uint8Array, Buffer>(
      Lease.methods.LeaseGrant.path,
      (b) => Buffer.from(b),
      (b) => b,
      encodeLeaseGrantRequest({ ID: id, TTL: ttlSec }),
      (err, res) => (err ? reject(err) : resolve(decodeLeaseGrantResponse(res!).ID)),
    );
  });
}

async function scenario(target: MemberKind): Promise<Record<string, StreamOutcome>> {
  const members: Member[] = await startCluster(target, ['a', 'b', 'c'], { extraArgs: FLAGS });
  const client = new grpc.Client(members[0].endpoint, grpc.credentials.createInsecure());
  try {
    await grant(client, LEASE_ID, 60);
    const kinds = { watch: WATCH, keepalive: KEEPALIVE };
    const streams = Object.entries(kinds).map(([name, kind]) => ({
      name,
      kind,
      strict: open(client, kind, true),
      plain: open(client, kind, false),
    }));
    const firsts = new Map<string, string>();
    for (const s of streams) {
      firsts.set(s.name, await awaitWithTimer(s.strict.first, 10_000, `the first ${s.name} answer`));
      await awaitWithTimer(s.plain.first, 10_000, `the first ${s.name} answer`);
    }
    await Promise.all([members[1].kill(), members[2].kill()]);
    const out: Record<string, StreamOutcome> = {};
    for (const s of streams) {
      const ended = await awaitWithTimer(s.strict.ended, 20_000, `the require-leader ${s.name} stream to end`);
      await new Promise((r) => setTimeout(r, 200));
      const refused = await awaitWithTimer(open(client, s.kind, true).ended, 10_000, `a refused ${s.name}`);
      out[s.name] = { ended, refused, plainOpen: s.plain.isOpen(), first: firsts.get(s.name) ?? '' };
    }
    for (const s of streams) s.plain.call.cancel();
    return out;
  } finally {
    client.close();
    await Promise.all(members.map((m) => m.stop()));
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`require-leader watch and keep-alive streams end with "no leader" on etcd and ${target} alike; plain ones stay`, async () => {
  const [want, got] = [await scenario('etcd'), await scenario(target)];
  const noLeader = { code: 14, details: 'etcdserver: no leader' };
  assert.equal(
    want,
    {
      watch: { ended: noLeader, refused: noLeader, plainOpen: true, first: 'created' },
      keepalive: { ended: noLeader, refused: noLeader, plainOpen: true, first: 'TTL 60' },
    },
    'etcd behaves as this test claims',
  );
  assert.equal(got, want);
  assert.is(runningChildren(), 0);
});

test.run();
