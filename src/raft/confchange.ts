// Membership changes as pure functions from (configuration, progress) to a new (configuration, progress):
// simple changes (at most one voter changes), entering and leaving a joint configuration, and restoring
// the configuration described by a ConfState.

import { ConfChangeError } from './errors.js';
import type { ProgressMap } from './progress.js';
import type { TrackerConfig, ProgressTracker } from './tracker.js';
import { type ConfChangeSingle, ConfChangeType, type ConfState, type NodeId } from './types.js';

/** The result of a change: the configuration and progress to switch to. */
export interface ChangeResult {
  config: TrackerConfig;
  progress: ProgressMap;
}

/**
 * Computes new configurations from the tracker's current one without modifying it. lastIndex is the
 * leader's last index; new members start probing from there.
 */
export class Changer {
  constructor(
    private readonly tracker: Pick<ProgressTracker, 'config' | 'progress' | 'newProgress'>,
    private readonly lastIndex: number,
  ) {}

  /**
   * Enters a joint configuration: the current voters become the outgoing half, the changes are applied
   * to the incoming half. autoLeave: the leader proposes the leave once this config is applied.
   */
  enterJoint(autoLeave: boolean, ccs: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.isJoint()) throw new ConfChangeError('config is already joint');
    if (config.voters.incoming.size === 0) throw new ConfChangeError("can't make a zero-voter config joint");
    for (const id of config.voters.incoming.ids) config.voters.outgoing.ids.add(id);
    this.apply(config, progress, ccs);
    config.autoLeave = autoLeave;
    return checkAndReturn(config, progress);
  }

  /** Leaves the joint configuration: the outgoing half is dropped, learnersNext become learners. */
  leaveJoint(): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (!config.voters.isJoint()) throw new ConfChangeError("can't leave a non-joint config");
    for (const id of config.learnersNext) {
      config.learners.add(id);
      const pr = progress.get(id);
      if (pr === undefined) throw new ConfChangeError(`no progress for ${id}`);
      pr.isLearner = true;
    }
    config.learnersNext.clear();
    for (const id of config.voters.outgoing.ids) {
      if (!config.voters.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.voters.outgoing.ids.clear();
    config.autoLeave = false;
    return checkAndReturn(config, progress);
  }

  /** Applies changes that alter at most one voter, without a joint configuration. */
  simple(ccs: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.isJoint()) throw new ConfChangeError("can't apply simple config change in joint config");
    this.apply(config, progress, ccs);
    if (symdiff(this.tracker.config.voters.incoming.ids, config.voters.incoming.ids) > 1) {
      throw new ConfChangeError('more than one voter changed without entering joint config');
    }
    return checkAndReturn(config, progress);
  }

  private apply(config: TrackerConfig, progress: ProgressMap, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      // A change for node 0 is a no-op (etcd uses it for "no change").
      if (cc.node_id === 0n) continue;
      switch (cc.type) {
        case ConfChangeType.AddNode:
          this.makeVoter(config, progress, cc.node_id);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(config, progress, cc.node_id);
          break;
        case ConfChangeType.RemoveNode:
          remove(config, progress, cc.node_id);
          break;
        case ConfChangeType.UpdateNode:
          break;
        default:
          throw new ConfChangeError(`unexpected conf type ${String(cc.type)}`);
      }
    }
    if (config.voters.incoming.size === 0) throw new ConfChangeError('removed all voters');
  }

  private makeVoter(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(config, progress, id, false);
      return;
    }
    pr.isLearner = false;
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.voters.incoming.ids.add(id);
  }

  private makeLearner(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(config, progress, id, true);
      return;
    }
    if (pr.isLearner) return;
    // Remove as a voter first, keeping the progress.
    remove(config, progress, id);
    progress.set(id, pr);
    // A voter of the outgoing half stays a voter there until the joint config is left.
    if (config.voters.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      config.learners.add(id);
    }
  }

  private initProgress(config: TrackerConfig, progress: ProgressMap, id: NodeId, isLearner: boolean): void {
    if (isLearner) config.learners.add(id);
    else config.voters.incoming.ids.add(id);
    // Probe from the leader's last index; a new member counts as active so that CheckQuorum does not
    // step the leader down before it was heard from.
    const pr = this.tracker.newProgress(this.lastIndex, isLearner);
    pr.recentActive = true;
    progress.set(id, pr);
  }

  private checkAndCopy(): { config: TrackerConfig; progress: ProgressMap } {
    const config = this.tracker.config.clone();
    const progress: ProgressMap = new Map();
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.clone());
    checkInvariants(config, progress);
    return { config, progress };
  }
}

function remove(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
  if (!progress.has(id)) return;
  config.voters.incoming.ids.delete(id);
  config.learners.delete(id);
  config.learnersNext.delete(id);
  // Still a voter of the outgoing half: keep its progress until the joint config is left.
  if (!config.voters.outgoing.has(id)) progress.delete(id);
}

/** Throws ConfChangeError unless config and progress are consistent with each other. */
export function checkInvariants(config: TrackerConfig, progress: ProgressMap): void {
  for (const ids of [config.voters.ids(), config.learners, config.learnersNext]) {
    for (const id of ids) if (!progress.has(id)) throw new ConfChangeError(`no progress for ${id}`);
  }
  for (const id of config.learnersNext) {
    if (!config.voters.outgoing.has(id)) throw new ConfChangeError(`${id} is in LearnersNext, but not Voters[1]`);
    if (progress.get(id)!.isLearner) {
      throw new ConfChangeError(`${id} is in LearnersNext, but is already marked as learner`);
    }
  }
  for (const id of config.learners) {
    if (config.voters.outgoing.has(id)) throw new ConfChangeError(`${id} is in Learners and Voters[1]`);
    if (config.voters.incoming.has(id)) throw new ConfChangeError(`${id} is in Learners and Voters[0]`);
    if (!progress.get(id)!.isLearner) throw new ConfChangeError(`${id} is in Learners, but is not marked as learner`);
  }
  // Every progress belongs to someone in the config (no orphans).
  for (const id of progress.keys()) {
    if (!config.voters.has(id) && !config.learners.has(id)) throw new ConfChangeError(`progress for ${id} not in config`);
  }
  if (!config.voters.isJoint()) {
    if (config.learnersNext.size > 0) throw new ConfChangeError('LearnersNext must be empty when not joint');
    if (config.autoLeave) throw new ConfChangeError('AutoLeave must be false when not joint');
  }
}

function checkAndReturn(config: TrackerConfig, progress: ProgressMap): ChangeResult {
  checkInvariants(config, progress);
  return { config, progress };
}

function symdiff(l: Set<NodeId>, r: Set<NodeId>): number {
  let n = 0;
  for (const id of l) if (!r.has(id)) n++;
  for (const id of r) if (!l.has(id)) n++;
  return n;
}

/**
 * Rebuilds the configuration a ConfState describes, starting from tracker's (normally empty) one, by
 * replaying it as changes: the outgoing voters first (simple adds), then entering joint with the
 * incoming side; or, when not joint, one simple add per member.
 */
export function restoreConfState(
  tracker: Pick<ProgressTracker, 'config' | 'progress' | 'newProgress'>,
  lastIndex: number,
  cs: ConfState,
): ChangeResult {
  const outgoing: ConfChangeSingle[] = cs.voters_outgoing.map((id) => ({ type: ConfChangeType.AddNode, node_id: id }));
  const incoming: ConfChangeSingle[] = [
    ...cs.voters_outgoing.map((id) => ({ type: ConfChangeType.RemoveNode, node_id: id })),
    ...cs.voters.map((id) => ({ type: ConfChangeType.AddNode, node_id: id })),
    ...cs.learners.map((id) => ({ type: ConfChangeType.AddLearnerNode, node_id: id })),
    ...cs.learners_next.map((id) => ({ type: ConfChangeType.AddLearnerNode, node_id: id })),
  ];
  let cur: ChangeResult = { config: tracker.config, progress: tracker.progress };
  const step = (f: (c: Changer) => ChangeResult) => {
    cur = f(new Changer({ config: cur.config, progress: cur.progress, newProgress: tracker.newProgress.bind(tracker) }, lastIndex));
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.auto_leave, incoming));
  }
  return cur;
}

/** "v1 l2 r3 u4": a compact description of changes (as in etcd's test data). */
export function describeChanges(ccs: ConfChangeSingle[]): string {
  const letter: Record<number, string> = {
    [ConfChangeType.AddNode]: 'v',
    [ConfChangeType.AddLearnerNode]: 'l',
    [ConfChangeType.RemoveNode]: 'r',
    [ConfChangeType.UpdateNode]: 'u',
  };
  return ccs.map((cc) => `${letter[cc.type] ?? '?'}${cc.node_id}`).join(' ');
}

/** Parses "v1 l2 r3 u4" into changes. */
export function parseChanges(s: string): ConfChangeSingle[] {
  const out: ConfChangeSingle[] = [];
  for (const tok of s.trim().split(/\s+/)) {
    if (tok === '') continue;
    const types: Record<string, ConfChangeType> = {
      v: ConfChangeType.AddNode,
      l: ConfChangeType.AddLearnerNode,
      r: ConfChangeType.RemoveNode,
      u: ConfChangeType.UpdateNode,
    };
    const t = types[tok[0]];
    if (t === undefined || !/^\d+$/.test(tok.slice(1))) throw new ConfChangeError(`unknown token ${tok}`);
    out.push({ type: t, node_id: BigInt(tok.slice(1)) });
  }
  return out;
}
