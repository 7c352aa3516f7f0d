// Runs the same etcdctl steps against two members (the oracle and the system under test) and compares
// normalized exit code, stdout and stderr line by line.
import * as assert from 'uvu/assert';
import { runningChildren } from './cleanup.js';
import { etcdctl, type CtlResult } from './etcdctl.js';
import { startCluster, startMember, type Member, type MemberKind, type MemberOptions } from './member.js';
import { compatTarget } from './oracle.js';
import { Normalizer } from './normalize.js';

/** One etcdctl invocation of a scenario. */
export interface Step {
  /** etcdctl arguments; `${LEASE_1}`, `${LEASE_2}`... become this member's own lease IDs (hex). */
  args: readonly string[];
  stdin?: string | Uint8Array;
  /** Learn the lease this step grants (`lease <hex> granted with TTL(...)`) as the next ${LEASE_n}. */
  captureLease?: boolean;
}

/** One member's side of a comparison: the member, its normalizer, its own variable values. */
export interface Side {
  member: Member;
  norm: Normalizer;
  vars: Map<string, string>;
}

/** Learns the member's member ID and cluster ID (so they normalize to <MEMBER_ID>/<CLUSTER_ID>). */
export async function prepareSide(member: Member): Promise<Side> {
  const norm = new Normalizer({ clientPort: member.clientPort, peerPort: member.peerPort });
  const r = await etcdctl(member.endpoint, ['endpoint', 'status', '-w', 'json']);
  const mid = /"member_id":(\d+)/.exec(r.stdout);
  const cid = /"cluster_id":(\d+)/.exec(r.stdout);
  if (r.code !== 0 || !mid || !cid) throw new Error(`cannot read IDs of ${member.name}: ${r.stdout}${r.stderr}\n${member.logs()}`);
  norm.learnId(BigInt(mid[1]!), '<MEMBER_ID>');
  norm.learnId(BigInt(cid[1]!), '<CLUSTER_ID>');
  return { member, norm, vars: new Map() };
}

/** The label a step is reported under: its arguments as a shell would show them. */
export function stepLabel(step: Step): string {
  const args = step.args.map((a) => (/^[\w./:=${}-]+$/.test(a) ? a : JSON.stringify(a.length > 40 ? a.slice(0, 40) + '…' : a)));
  const stdin =
    step.stdin === undefined ? '' : ` <<< ${JSON.stringify(String(step.stdin).slice(0, 60))}${String(step.stdin).length > 60 ? '…' : ''}`;
  return `etcdctl ${args.join(' ')}${stdin}`;
}

/** Runs one step on one side; returns the normalized result. */
export async function runStep(side: Side, step: Step): Promise<CtlResult> {
  const args = step.args.map((a) =>
    a.replace(/\$\{(\w+)\}/g, (_m, v: string) => {
      const val = side.vars.get(v);
      if (val === undefined) throw new Error(`step uses \${${v}} before it was captured`);
      return val;
    }),
  );
  const r = await etcdctl(side.member.endpoint, args, { stdin: step.stdin });
  if (step.captureLease) {
    const m = /lease ([0-9a-f]+) granted/.exec(r.stdout);
    if (m) {
      const token = side.norm.learnLease(m[1]!);
      side.vars.set(token.slice(1, -1), m[1]!);
    }
  }
  return { code: r.code, stdout: side.norm.normalize(r.stdout), stderr: side.norm.normalize(r.stderr) };
}

/**
 * etcdctl prints errors as `{"level":"warn","ts":"...","caller":...}` retry logs plus `Error: <msg>`;
 * only the `Error:` lines and plain lines are part of the contract, the structured client logs are not.
 */
function contractLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{"level"'));
}

/** A line-by-line comparison; null when equal, else a readable difference. */
export function compareResults(label: string, oracle: CtlResult, target: CtlResult): string | null {
  const problems: string[] = [];
  if (oracle.code !== target.code) problems.push(`exit code: etcd ${oracle.code}, target ${target.code}`);
  const streams: Array<[string, string[], string[]]> = [
    ['stdout', oracle.stdout.split('\n'), target.stdout.split('\n')],
    ['stderr', contractLines(oracle.stderr), contractLines(target.stderr)],
  ];
  for (const [name, a, b] of streams) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) {
        problems.push(
          `${name} line ${i + 1}:\n    etcd:   ${JSON.stringify(a[i] ?? '<missing>')}\n    target: ${JSON.stringify(b[i] ?? '<missing>')}`,
        );
        break;
      }
    }
  }
  return problems.length === 0 ? null : `${label}\n  ${problems.join('\n  ')}`;
}

/** How a suite registers a test: uvu's `test`, or what oracleGate(test) returned. */
type Register = (name: string, fn: () => void | Promise<void>) => void;

/**
 * Registers a whole scenario on `t`: start a fresh etcd (the oracle) and a fresh system under test, one test
 * per step comparing their normalized results, then stop both.
 *
 *   registerScenario(oracleGate(test), STEPS);  test.run();
 */
export function registerScenario(t: Register, steps: readonly Step[], opts: Omit<MemberOptions, 'name'> = {}, members = 1): void {
  const target = compatTarget();
  let oracle: Side | undefined;
  let sut: Side | undefined;
  const started: Member[] = [];
  // One member each, or clusters whose last member takes every step.
  const start = async (kind: MemberKind): Promise<Member> => {
    if (members === 1) {
      const m = await startMember(kind, { ...opts, name: 'm1' });
      started.push(m);
      return m;
    }
    const names = Array.from({ length: members }, (_, i) => `m${i + 1}`);
    const ms = await startCluster(kind, names, opts);
    started.push(...ms);
    return ms[ms.length - 1];
  };

  t(`start a fresh etcd (oracle) and a fresh ${target}${members > 1 ? `, ${members} members each` : ''}`, async () => {
    const [a, b] = await Promise.all([start('etcd'), start(target)]);
    oracle = await prepareSide(a);
    sut = await prepareSide(b);
  });

  for (const step of steps) {
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

  t('stop the members', async () => {
    await Promise.all(started.map((m) => m.stop()));
    assert.is(runningChildren(), 0);
  });
}
