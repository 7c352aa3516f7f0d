// The simulation's safety checker: Raft's invariants, checked incrementally after every step. It throws
// Violation on the first breach; the harness turns that into a failing seed.

import type { Entry, HardState, NodeId } from '../../../src/raft/types.js';

/** An invariant was broken. */
export class Violation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'Violation';
  }
}

/** A stable identity for an entry's contents (term, type and payload). */
export function entryId(e: Entry): string {
  let s = `${e.term}:${e.type}:`;
  for (let i = 0; i < e.data.length; i++) s += String.fromCharCode(e.data[i]);
  return s;
}

/** What the checker needs to read from a live member. */
export interface MemberView {
  id: NodeId;
  /** Stable per process incarnation: volatile state may regress across restarts only. */
  incarnation: number;
  isLeader: boolean;
  term: number;
  committed: number;
  firstIndex: number;
  lastIndex: number;
  /** Entries [lo, hi) of its log. */
  slice(lo: number, hi: number): Entry[];
}

interface ReadRequest {
  node: NodeId;
  minIndex: number;
}

/** Incremental checks of election safety, log matching, leader completeness, state machine safety, commit monotonicity and read safety. */
export class Checker {
  /** Leader of each term seen so far. */
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Identity of every entry known committed, by index. */
  private readonly committed = new Map<number, string>();
  /** Highest index known committed anywhere (in memory of any member, ever). */
  maxCommitted = 0;
  /** (index:term) → entry identity and the term of the entry before it. */
  private readonly logIds = new Map<string, string>();
  /** index → identity of the entry applied there (the first member to apply it decides). */
  private readonly applied = new Map<number, string>();
  /** index → state hash after applying it. */
  private readonly stateHash = new Map<number, number>();
  /** Per member: durable hard state, last seen commit per incarnation. */
  private readonly durable = new Map<NodeId, HardState>();
  private readonly seenCommit = new Map<NodeId, { incarnation: number; commit: number }>();
  private readonly reads = new Map<string, ReadRequest>();
  /** Counters for the run summary. */
  readonly stats = { leaders: 0, commits: 0, applies: 0, readsAnswered: 0, readsIssued: 0 };

  /** checkDurableVotes=false leaves double votes to be caught by election safety (self-test). */
  constructor(private readonly checkDurableVotes = true) {}

  /** Checks every live member's volatile state after a step. */
  afterStep(members: MemberView[]): void {
    for (const m of members) {
      this.checkLeader(m);
      this.checkCommit(m, members);
    }
  }

  private checkLeader(m: MemberView): void {
    if (!m.isLeader) return;
    const prev = this.leaderOfTerm.get(m.term);
    if (prev !== undefined) {
      if (prev !== m.id) throw new Violation('election safety', `two leaders in term ${m.term}: ${prev} and ${m.id}`);
      return;
    }
    this.leaderOfTerm.set(m.term, m.id);
    this.stats.leaders++;
    // Leader completeness: the new leader's log holds every entry committed so far.
    for (const [index, id] of this.committed) {
      if (index < m.firstIndex) continue; // inside its snapshot
      if (index > m.lastIndex) {
        throw new Violation('leader completeness', `leader ${m.id} of term ${m.term} lacks committed index ${index} (last ${m.lastIndex})`);
      }
      const got = entryId(m.slice(index, index + 1)[0]);
      if (got !== id) {
        throw new Violation('leader completeness', `leader ${m.id} of term ${m.term} has a different entry at committed index ${index}`);
      }
    }
  }

  private checkCommit(m: MemberView, members: MemberView[]): void {
    const seen = this.seenCommit.get(m.id);
    if (seen !== undefined && seen.incarnation === m.incarnation) {
      if (m.committed < seen.commit) {
        throw new Violation('commit monotonicity', `member ${m.id} commit went from ${seen.commit} to ${m.committed}`);
      }
      if (m.committed === seen.commit) return;
    }
    const from = seen !== undefined && seen.incarnation === m.incarnation ? seen.commit + 1 : m.firstIndex;
    this.seenCommit.set(m.id, { incarnation: m.incarnation, commit: m.committed });
    if (m.committed > this.maxCommitted) this.maxCommitted = m.committed;
    const lo = Math.max(from, m.firstIndex);
    if (lo > m.committed) return;
    const ents = m.slice(lo, m.committed + 1);
    for (const e of ents) {
      const id = entryId(e);
      const prev = this.committed.get(e.index);
      if (prev === undefined) {
        this.committed.set(e.index, id);
        this.stats.commits++;
        // A leader of a later term than the one this was committed in must hold it too. The commit term
        // is not known here, but it is at most the observer's term (an entry of an older term may be
        // committed by a newer leader while a stale leader in between, which lacks it, still lingers).
        for (const other of members) {
          if (!other.isLeader || other.term <= m.term) continue;
          if (e.index < other.firstIndex) continue;
          if (e.index > other.lastIndex || entryId(other.slice(e.index, e.index + 1)[0]) !== id) {
            throw new Violation(
              'leader completeness',
              `leader ${other.id} of term ${other.term} lacks entry ${e.index} committed by term ${m.term}`,
            );
          }
        }
      } else if (prev !== id) {
        throw new Violation('state machine safety', `member ${m.id} committed a different entry at index ${e.index}`);
      }
    }
  }

  /** Entries a member is about to persist: same (index, term) must mean same entry and same predecessor. */
  onAppend(member: NodeId, ents: Entry[], prevTerm: number | undefined): void {
    let pt = prevTerm;
    for (const e of ents) {
      const key = `${e.index}:${e.term}`;
      const val = `${entryId(e)}|${pt === undefined ? '?' : pt}`;
      const prev = this.logIds.get(key);
      if (prev === undefined) {
        this.logIds.set(key, val);
      } else if (prev !== val) {
        // An unknown predecessor term (compacted) cannot be compared; the payload still must match.
        const [pPayload, pPrev] = splitLast(prev);
        const [vPayload, vPrev] = splitLast(val);
        if (pPayload !== vPayload || (pPrev !== '?' && vPrev !== '?' && pPrev !== vPrev)) {
          throw new Violation('log matching', `member ${member} has a different entry or predecessor at index ${e.index} term ${e.term}`);
        }
      }
      pt = e.term;
    }
  }

  /** A member applied entry e, reaching state hash h. */
  onApply(member: NodeId, e: Entry, h: number): void {
    const id = entryId(e);
    const prev = this.applied.get(e.index);
    if (prev === undefined) {
      this.applied.set(e.index, id);
      this.stateHash.set(e.index, h);
      this.stats.applies++;
    } else if (prev !== id) {
      throw new Violation('state machine safety', `member ${member} applied a different entry at index ${e.index}`);
    } else if (this.stateHash.get(e.index) !== h) {
      throw new Violation('state machine safety', `member ${member} reached a different state at index ${e.index}`);
    }
    const c = this.committed.get(e.index);
    if (c !== undefined && c !== id) {
      throw new Violation('state machine safety', `member ${member} applied an entry at ${e.index} that differs from the committed one`);
    }
  }

  /** A member installed a snapshot at index with state hash h. */
  onSnapshot(member: NodeId, index: number, h: number): void {
    const known = this.stateHash.get(index);
    if (known === undefined) this.stateHash.set(index, h);
    else if (known !== h)
      throw new Violation('state machine safety', `member ${member} installed a snapshot at ${index} with a different state`);
  }

  /** A member made hs durable: term and commit never go back (vote may change only with the term). */
  onPersistHardState(member: NodeId, hs: HardState): void {
    const prev = this.durable.get(member);
    if (prev !== undefined) {
      if (hs.term < prev.term) throw new Violation('durable term monotonicity', `member ${member} term ${prev.term} -> ${hs.term}`);
      if (hs.commit < prev.commit)
        throw new Violation('durable commit monotonicity', `member ${member} commit ${prev.commit} -> ${hs.commit}`);
      if (this.checkDurableVotes && hs.term === prev.term && prev.vote !== 0n && hs.vote !== prev.vote) {
        throw new Violation('durable vote', `member ${member} changed its vote in term ${hs.term} from ${prev.vote} to ${hs.vote}`);
      }
    }
    this.durable.set(member, { ...hs });
  }

  /** A read was requested: its answer must be at least every index committed now. */
  onReadRequest(ctx: string, node: NodeId): void {
    this.reads.set(ctx, { node, minIndex: this.maxCommitted });
    this.stats.readsIssued++;
  }

  /** A read was answered at index. */
  onReadState(ctx: string, node: NodeId, index: number): void {
    const r = this.reads.get(ctx);
    if (r === undefined) return; // a duplicate answer
    if (r.node !== node) throw new Violation('read safety', `read ${ctx} of member ${r.node} answered at ${node}`);
    if (index < r.minIndex) {
      throw new Violation('read safety', `read ${ctx} answered at index ${index} < ${r.minIndex} committed before it was issued`);
    }
    this.reads.delete(ctx);
    this.stats.readsAnswered++;
  }
}

function splitLast(s: string): [string, string] {
  const i = s.lastIndexOf('|');
  return [s.slice(0, i), s.slice(i + 1)];
}
