// The oracle test for leases: etcdctl's lease commands and put/del with leases, run against a fresh etcd 3.4
// and a fresh tetcd, outputs compared line by line (lease IDs and remaining TTLs normalized: helpers/normalize.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { compareResults, prepareSide, runStep, stepLabel, type Side, type Step } from '../helpers/scenario.js';

const STEPS: Step[] = [
  { args: ['lease', 'list'] },
  { args: ['lease', 'grant', '100'], captureLease: true }, // LEASE_1
  { args: ['lease', 'grant', '60'], captureLease: true }, // LEASE_2
  { args: ['put', 'k1', 'v1', `--lease=\${LEASE_1}`] },
  { args: ['put', 'k2', 'v2', `--lease=\${LEASE_1}`] },
  { args: ['put', 'k3', 'v3', `--lease=\${LEASE_2}`] },
  { args: ['get', 'k', '--prefix', '-w', 'json'] },
  { args: ['lease', 'timetolive', `\${LEASE_1}`] },
  { args: ['lease', 'timetolive', `\${LEASE_1}`, '--keys'] },
  { args: ['lease', 'list'] },
  { args: ['lease', 'list', '-w', 'json'] },
  { args: ['lease', 'keep-alive', '--once', `\${LEASE_1}`] },
  { args: ['lease', 'keep-alive', '--once', `\${LEASE_1}`, '-w', 'json'] },
  // A lease that does not exist: keep-alive answers TTL 0, time-to-live TTL -1 (not errors).
  { args: ['lease', 'keep-alive', '--once', '1234abcd'] },
  { args: ['lease', 'timetolive', '1234abcd'] },
  { args: ['lease', 'timetolive', '1234abcd', '-w', 'json'] },
  { args: ['put', 'k9', 'v', '--lease=1234abcd'] },
  // Attach and detach: a put without a lease detaches, --ignore-lease keeps it, a delete detaches.
  { args: ['put', 'k4', 'v4', `--lease=\${LEASE_2}`] },
  { args: ['put', 'k4', 'v4b'] },
  { args: ['put', 'k3', 'v3b', '--ignore-lease'] },
  { args: ['get', 'k3', '-w', 'json'] },
  { args: ['get', 'k4', '-w', 'json'] },
  { args: ['lease', 'timetolive', `\${LEASE_2}`, '--keys'] },
  { args: ['put', 'k2', 'moved', `--lease=\${LEASE_2}`] },
  { args: ['lease', 'timetolive', `\${LEASE_1}`, '--keys'] },
  { args: ['lease', 'timetolive', `\${LEASE_2}`, '--keys'] },
  { args: ['del', 'k3'] },
  { args: ['lease', 'timetolive', `\${LEASE_2}`, '--keys'] },
  // Revoke: every attached key goes in one revision; twice is not found.
  { args: ['lease', 'revoke', `\${LEASE_1}`] },
  { args: ['get', '', '--prefix', '-w', 'json'] },
  { args: ['lease', 'revoke', `\${LEASE_1}`] },
  { args: ['lease', 'timetolive', `\${LEASE_1}`] },
  { args: ['lease', 'keep-alive', '--once', `\${LEASE_1}`] },
  { args: ['lease', 'revoke', `\${LEASE_2}`] },
  { args: ['get', '', '--prefix', '-w', 'json'] },
  // TTL bounds: below the minimum is raised to it (2 s with the default election timeout), the maximum is 9e9 s.
  { args: ['lease', 'grant', '1'], captureLease: true }, // LEASE_3
  { args: ['lease', 'grant', '0'], captureLease: true }, // LEASE_4
  { args: ['lease', 'grant', '9000000000'], captureLease: true }, // LEASE_5
  { args: ['lease', 'grant', '9000000001'] },
  { args: ['lease', 'timetolive', `\${LEASE_5}`, '-w', 'json'] },
  { args: ['lease', 'revoke', `\${LEASE_5}`] },
  { args: ['lease', 'revoke', '0'] },
];

const target = compatTarget();
const t = oracleGate(test);
let oracle: Side;
let sut: Side;
const members: Member[] = [];

t('start a fresh etcd (oracle) and a fresh ' + target, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  members.push(a!, b!);
  oracle = await prepareSide(a!);
  sut = await prepareSide(b!);
});

for (const step of STEPS) {
  const label = stepLabel(step);
  t(label, async () => {
    assert.ok(oracle && sut, 'members did not start');
    const a = await runStep(oracle, step);
    const b = await runStep(sut, step);
    if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`\n# ${label}\n[${a.code}] ${a.stdout}${a.stderr}`);
    const diff = compareResults(label, a, b);
    if (diff !== null) assert.unreachable(`${diff}\n--- ${target} log tail:\n${sut.member.logs().slice(-3000)}`);
  });
}

t('stop both members', async () => {
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
