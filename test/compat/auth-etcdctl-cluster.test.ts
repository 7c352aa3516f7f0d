// The auth oracle scenario (auth_steps.ts) on three members: etcd 3.4 and tetcd clusters, every step sent to
// the third member, so permission checks, auth changes and tokens cross members (changes are applied from the
// log on every member; a token is minted by one and honoured by the others). Steps whose output lists the
// members (member list, endpoint status) or depends on who leads (move-leader) run only in the one-member
// suite: their IDs and order differ.
import { test } from 'uvu';
import { oracleGate } from '../helpers/oracle.js';
import { registerScenario } from '../helpers/scenario.js';
import { STEPS } from './auth_steps.js';

// move-leader answers by whether the member asked leads, which differs between the two clusters.
const LISTS_MEMBERS = (args: readonly string[]) => args.includes('member') || args.includes('endpoint') || args.includes('move-leader');

registerScenario(
  oracleGate(test),
  STEPS.filter((s) => !LISTS_MEMBERS(s.args)),
  { extraArgs: ['--bcrypt-cost', '4', '--heartbeat-interval', '100', '--election-timeout', '500'] },
  3,
);

test.run();
