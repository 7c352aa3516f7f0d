// The oracle test for auth: etcdctl's user, role and auth commands, and a permission matrix (every
// operation × no user, wrong password, read-only, write-only, prefix and root users), run against a fresh
// etcd 3.4 and a fresh tetcd, outputs compared line by line. Both at --bcrypt-cost 4 to keep it short.
import { test } from 'uvu';
import { oracleGate } from '../helpers/oracle.js';
import { registerScenario } from '../helpers/scenario.js';
import { STEPS } from './auth_steps.js';

registerScenario(oracleGate(test), STEPS, { extraArgs: ['--bcrypt-cost', '4'] });

test.run();
