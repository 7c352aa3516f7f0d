// Watch streams that require a leader (metadata `hasleader: true`, clientv3's WithRequireLeader, which
// Kubernetes sets): on a member that lost its leader they end with UNAVAILABLE `etcdserver: no leader`
// after a few election timeouts, a new one is refused at once, and a stream without the metadata stays.
// Checked against a 3-member etcd 3.4 and a 3-member tetcd, both with two members killed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchResponse } from '../../src/proto/rpc.js';
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
  /** The require-leader stream was created before the members were killed. */
  createdFirst: boolean;
}

function openWatch(
  client: grpc.Client,
  requireLeader: boolean,
): {
  call: grpc.ClientDuplexStream<Uint8Array, WatchResponse>;
  ended: Promise<{ code: number; details: string }>;
  created: Promise<boolean>;
} {
  const md = new grpc.Metadata();
  if (requireLeader) md.set('hasleader', 'true');
  const call = client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
    '/etcdserverpb.Watch/Watch',
    (b) => Buffer.from(b),
    (b) => decodeWatchResponse(b),
    md,
  );
  let createdResolve!: (v: boolean) => void;
  const created = new Promise<boolean>((r) => {
    createdResolve = r;
  });
  call.on('data', (res: WatchResponse) => {
    if (res.created) createdResolve(true);
  });
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => {
      createdResolve(false);
      resolve({ code: err.code, details: err.details });
    });
    call.on('end', () => {
      createdResolve(false);
      resolve({ code: 0, details: '' });
    });
  });
  call.write(encodeWatchRequest({ create_request: { key: Buffer.from('k') } }));
  return { call, ended, created };
}

async function scenario(kind: MemberKind): Promise<Outcome> {
  const members: Member[] = await startCluster(kind, ['a', 'b', 'c'], { extraArgs: FLAGS });
  const survivor = members[0];
  const client = new grpc.Client(survivor.endpoint, grpc.credentials.createInsecure());
  try {
    const strict = openWatch(client, true);
    const plain = openWatch(client, false);
    const createdFirst = await awaitWithTimer(strict.created, 10_000, 'created');
    await awaitWithTimer(plain.created, 10_000, 'created');
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
    const refused = await awaitWithTimer(openWatch(client, true).ended, 10_000, 'a refused stream');
    const stillOpen = plainOpen;
    plain.call.cancel();
    return { ended, refused, plainOpen: stillOpen, createdFirst };
  } finally {
    client.close();
    await Promise.all(members.map((m) => m.stop()));
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`a require-leader watch ends with "no leader" on etcd and ${target} alike; a plain one stays`, async () => {
  const [want, got] = [await scenario('etcd'), await scenario(target)];
  assert.equal(
    want,
    {
      ended: { code: 14, details: 'etcdserver: no leader' },
      refused: { code: 14, details: 'etcdserver: no leader' },
      plainOpen: true,
      createdFirst: true,
    },
    'etcd behaves as this test claims',
  );
  assert.equal(got, want);
  assert.is(runningChildren(), 0);
});

test.run();
