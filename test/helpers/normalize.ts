// Makes etcdctl output from two different members comparable. Only what legitimately differs between two
// correct members is rewritten (the list below); revisions, values, versions, counts, errors and exit codes
// are left exactly as printed.
//
//   1. the member's own client and peer ports        -> <CLIENT_PORT>, <PEER_PORT>
//   2. member, cluster and lease IDs (hex or decimal) -> <MEMBER_ID>, <CLUSTER_ID>, <LEASE_1>..., <ID_1>...
//   3. raft term, raft index, raft applied index      -> <RAFT_TERM>, <RAFT_INDEX>, <RAFT_APPLIED_INDEX>
//   4. backend sizes (dbSize, dbSizeInUse)            -> <DB_SIZE>, <DB_SIZE_IN_USE>
//   5. timings: `took = 1.2ms`, a lease's remaining TTL -> <DURATION>, <TTL>
//   6. the order of a lease's attached keys (etcd lists them in Go map order) -> sorted

/** The placeholder rules, for failure messages and the report. */
export const NORMALIZED_FIELDS: readonly string[] = [
  'client/peer port',
  'member ID',
  'cluster ID',
  'lease ID',
  'raft term',
  'raft index',
  'raft applied index',
  'db size',
  'db size in use',
  'took = <duration>',
  'lease remaining TTL',
  'lease attached keys order',
];

const JSON_IDS = ['cluster_id', 'member_id', 'leader', 'ID', 'lease', 'id', 'ClusterID', 'MemberID', 'Lease'];
const JSON_RAFT: Record<string, string> = {
  raft_term: '<RAFT_TERM>',
  raftTerm: '<RAFT_TERM>',
  RaftTerm: '<RAFT_TERM>',
  raftIndex: '<RAFT_INDEX>',
  raftAppliedIndex: '<RAFT_APPLIED_INDEX>',
  dbSize: '<DB_SIZE>',
  dbSizeInUse: '<DB_SIZE_IN_USE>',
};

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * One member's normalizer. IDs it has learned (or first sees in an ID field) keep one placeholder for the
 * whole scenario, so "the same lease" on both sides compares equal and two different leases do not.
 *
 *   const n = new Normalizer({ clientPort: 23790, peerPort: 23800 });
 *   n.learnId(memberId, '<MEMBER_ID>');
 *   n.normalize(stdout);
 */
export class Normalizer {
  private readonly tokens = new Map<bigint, string>();
  private leases = 0;
  private others = 0;

  constructor(private readonly ctx: { clientPort: number; peerPort: number }) {}

  /** Gives `id` a fixed placeholder. */
  learnId(id: bigint, token: string): void {
    this.tokens.set(id, token);
  }

  /** Registers a lease ID (hex, as etcdctl prints it) and returns its placeholder, <LEASE_n> in grant order. */
  learnLease(hex: string): string {
    const id = BigInt('0x' + hex);
    const known = this.tokens.get(id);
    if (known) return known;
    const token = `<LEASE_${++this.leases}>`;
    this.tokens.set(id, token);
    return token;
  }

  private tokenFor(id: bigint): string {
    let t = this.tokens.get(id);
    if (t === undefined) {
      t = `<ID_${++this.others}>`;
      this.tokens.set(id, t);
    }
    return t;
  }

  /** Applies the rules above to one output text. */
  normalize(text: string): string {
    let s = text;
    s = s.replace(new RegExp(`:${this.ctx.clientPort}\\b`, 'g'), ':<CLIENT_PORT>');
    s = s.replace(new RegExp(`:${this.ctx.peerPort}\\b`, 'g'), ':<PEER_PORT>');
    // IDs inside JSON (`"member_id":123`) and -w fields (`"MemberID" : 123`); 0 means "none" and stays.
    s = s.replace(new RegExp(`"(${JSON_IDS.join('|')})"(\\s*:\\s*)"?(\\d+)"?`, 'g'), (m, key: string, sep: string, num: string) => {
      const id = BigInt(num);
      return id === 0n ? m : `"${key}"${sep}${this.tokenFor(id)}`;
    });
    for (const [key, token] of Object.entries(JSON_RAFT)) {
      s = s.replace(new RegExp(`"${key}"(\\s*:\\s*)"?\\d+"?`, 'g'), `"${key}"$1${token}`);
    }
    // IDs printed in hex by the simple format (member list, endpoint status, lease commands), which pads
    // lease IDs to 16 digits (%016x) but not member IDs.
    for (const [id, token] of this.tokens) {
      s = s.replace(new RegExp(`\\b0*${escapeRe(id.toString(16))}\\b`, 'g'), token);
    }
    // Alarms print their member in decimal (`memberID:123 alarm:NOSPACE`).
    s = s.replace(/memberID:(\d+)/g, (m, num: string) => {
      const token = this.tokens.get(BigInt(num));
      return token === undefined ? m : `memberID:${token}`;
    });
    // endpoint status, simple format: endpoint, ID, version, db size, leader, learner, term, index, applied, errors
    s = s.replace(
      /^([^,\n]+), ([^,\n]+), ([^,\n]+), [0-9.]+ [kMGT]?B, (true|false), (true|false), \d+, \d+, \d+, /gm,
      '$1, $2, $3, <DB_SIZE>, $4, $5, <RAFT_TERM>, <RAFT_INDEX>, <RAFT_APPLIED_INDEX>, ',
    );
    s = s.replace(/took = [0-9.]+(?:ns|µs|us|ms|s|m|h)+/g, 'took = <DURATION>');
    s = s.replace(/"took"(\s*:\s*)"[^"]*"/g, '"took"$1"<DURATION>"');
    s = s.replace(/remaining\(-?\d+s\)/g, 'remaining(<TTL>)');
    s = s.replace(/attached keys\(\[([^\]\n]*)\]\)/g, (_m, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`);
    return s;
  }
}
