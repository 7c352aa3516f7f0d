// A follower's MemberPromote asks the leader whether the learner caught up (only the leader knows its
// progress; etcd forwards the whole promote to the leader's /members/promote/<id> peer endpoint). Frames
// go on the peer streams Raft already uses (FrameType.Member). Our own format:
//   question: [u8 kind 1][u32 request ID][u64 learner ID]
//   answer:   [u8 kind 2][u32 request ID][u8 status: 0 ready, 1 not ready, 2 not leader]
import { Errors } from '../errors.js';

const KIND_ASK = 1;
const KIND_ANSWER = 2;
const STATUS_READY = 0;
const STATUS_NOT_READY = 1;
const STATUS_NOT_LEADER = 2;
/** Questions waiting for an answer at once; beyond it: too many requests. */
export const MEMBER_QUESTIONS_MAX = 64;

export interface MemberForwardDeps {
  /** Sends a membership frame to a peer; false if it was dropped. */
  send(to: bigint, payload: Uint8Array): boolean;
  leaderId(): bigint;
  /** The leader's answer about learner `id` (MemberChanges.learnerReadiness). */
  readiness(id: bigint): Error | 'not leader' | undefined;
  timeoutMs: number;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Both ends of the question.
 *
 *   await forward.askLearnerReady(id);   // a follower: resolves when the leader says the learner is ready
 *   forward.receive(from, payload);      // every member: the transport's onMember
 */
export class MemberForward {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();

  constructor(private readonly d: MemberForwardDeps) {}

  askLearnerReady(learner: bigint): Promise<void> {
    const leader = this.d.leaderId();
    if (leader === 0n) return Promise.reject(Errors.NoLeader());
    if (this.waiting.size >= MEMBER_QUESTIONS_MAX) return Promise.reject(Errors.TooManyRequests());
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffff_ffff) + 1;
    const b = Buffer.allocUnsafe(13);
    b[0] = KIND_ASK;
    b.writeUInt32BE(id, 1);
    b.writeBigUInt64BE(learner, 5);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(Errors.Timeout());
      }, this.d.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      if (!this.d.send(leader, b)) this.settle(id, () => Errors.LeaderChanged());
    });
  }

  /** A membership frame from a peer; malformed ones are dropped. */
  receive(from: bigint, payload: Uint8Array): void {
    const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (b.length === 13 && b[0] === KIND_ASK) {
      const r = this.d.readiness(b.readBigUInt64BE(5));
      const a = Buffer.allocUnsafe(6);
      a[0] = KIND_ANSWER;
      a.writeUInt32BE(b.readUInt32BE(1), 1);
      a[5] = r === undefined ? STATUS_READY : r === 'not leader' ? STATUS_NOT_LEADER : STATUS_NOT_READY;
      this.d.send(from, a);
    } else if (b.length === 6 && b[0] === KIND_ANSWER) {
      const status = b[5];
      this.settle(b.readUInt32BE(1), () =>
        status === STATUS_READY ? undefined : status === STATUS_NOT_READY ? Errors.LearnerNotReady() : Errors.LeaderChanged(),
      );
    }
  }

  /** Fails every question (the member stops). */
  failAll(err: Error): void {
    for (const id of [...this.waiting.keys()]) this.settle(id, () => err);
  }

  private settle(id: number, outcome: () => Error | undefined): void {
    const w = this.waiting.get(id);
    if (w === undefined) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    const err = outcome();
    if (err === undefined) w.resolve();
    else w.reject(err);
  }
}
