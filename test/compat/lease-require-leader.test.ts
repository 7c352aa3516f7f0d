// LeaseKeepAlive streams that require a leader (metadata `hasleader: true`, clientv3's WithRequireLeader):
// on a member that lost its leader they end with UNAVAILABLE `etcdserver: no leader` after a few election
// timeouts, a new one is refused at once, and a stream without the metadata stays. Checked against a
// 3-member etcd 3.4 and a 3-member tetcd, both with two members killed; with TETCD_CLIENT_WORKERS=2 the
// keep-alive streams are served by the client processes, which must end them just the same.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import {
  Lease,
  decodeLeaseGrantResponse,
  decodeLeaseKeepAliveResponse,
  encodeLeaseGrantRequest,
  encodeLeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
} from '../../src/proto/rpc.js';
import { awaitWithTimer, runningChildren } from '../helpers/cleanup.js';
import { startCluster, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const FLAGS = ['--heartbeat-interval', '100', '--election-timeout', '500'];

interface Outcome {
  /** The require-leader stream's end: its status code and message. */
  ended: { code: number; details: string };
  /** A require-leader stream opened after the leader was lost. */
  refused: { code: number; details: string };
  /** The plain stream was still open when the other ended. */
  plainOpen: boolean;
  /** The require-leader stream's first keep-alive was answered (TTL) before the members were killed. */
  firstTtl: number;
}

function openKeepAlive(client: grpc.Client, requireLeader: boolean, id: bigint) {
  const md = new grpc.Metadata();
  if (requireLeader) md.set('hasleader', 'true');
  const call = client.makeBidiStreamRequest<Uint8Array, LeaseKeepAliveResponse>(
    Lease.methods.LeaseKeepAlive.path,
    (b) => Buffer.from(b),
    (b) => decodeLeaseKeepAliveResponse(b),
    md,
  );
  let answered!: (ttl: number) => void;
  const first = new Promise<number>((r) => {
    answered = r;
  });
  call.on('data', (res: LeaseKeepAliveResponse) => answered(res.TTL));
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => {
      answered(-1);
      resolve({ code: err.code, details: err.details });
    });
    call.on('end', () => {
      answered(-1);
      resolve({ code: 0, details: '' });
    });
  });
  call.write(encodeLeaseKeepAliveRequest({ ID: id }));
  return { call, ended, first };
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

async function scenario(kind: MemberKind): Promise<Outcome> {
  const members: Member[] = await startCluster(kind, ['a', 'b', 'c'], { extraArgs: FLAGS });
  const survivor = members[0];
  const client = new grpc.Client(survivor.endpoint, grpc.credentials.createInsecure());
  try {
    const id = await grant(client, 0x77n, 60);
    const strict = openKeepAlive(client, true, id);
    const plain = openKeepAlive(client, false, id);
    const firstTtl = await awaitWithTimer(strict.first, 10_000, 'the first answer');
    await awaitWithTimer(plain.first, 10_000, 'the first answer');
    await Promise.all([members[1].kill(), members[2].kill()]);
    const ended = await awaitWithTimer(strict.ended, 20_000, 'the require-leader stream to end');
    let plainOpen = true;
    plain.ended.then(
      () => {
        plainOpen = false;
      },
      () => {},
    );
    await new Promise((r) => setTimeout(r, 200));
    const refused = await awaitWithTimer(openKeepAlive(client, true, id).ended, 10_000, 'a refused stream');
    const stillOpen = plainOpen;
    plain.call.cancel();
    return { ended, refused, plainOpen: stillOpen, firstTtl };
  } finally {
    client.close();
    await Promise.all(members.map((m) => m.stop()));
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`a require-leader keep-alive stream ends with "no leader" on etcd and ${target} alike; a plain one stays`, async () => {
  const [want, got] = [await scenario('etcd'), await scenario(target)];
  assert.equal(
    want,
    {
      ended: { code: 14, details: 'etcdserver: no leader' },
      refused: { code: 14, details: 'etcdserver: no leader' },
      plainOpen: true,
      firstTtl: 60,
    },
    'etcd behaves as this test claims',
  );
  assert.equal(got, want);
  assert.is(runningChildren(), 0);
});

test.run();
