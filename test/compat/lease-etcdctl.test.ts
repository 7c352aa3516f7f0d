// The oracle test for leases: etcdctl's lease commands and put/del with leases, run against a fresh etcd 3.4
// and a fresh tetcd, outputs compared line by line (lease IDs and remaining TTLs normalized: helpers/normalize.ts).
import { test } from 'uvu';
import { oracleGate } from '../helpers/oracle.js';
import { registerScenario, type Step } from '../helpers/scenario.js';

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

registerScenario(oracleGate(test), STEPS);

test.run();
