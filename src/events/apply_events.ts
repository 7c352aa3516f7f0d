// Apply events: what every applied entry changed (published by the member's applier, src/server), published in apply order to the member's subscribers
// (watch, the lessor, the auth cache). Delivery is synchronous, on the apply path, and bounded: a
// subscriber takes an event or says it cannot (its own buffer is full); then it is behind, gets no more
// events, is told so once, and resumes when it has caught up from the store. Apply never waits.
import type { MvccEvent } from '../mvcc/index.js';
import type { Member } from '../proto/rpc.js';
import { assert } from '../assert.js';

/** The MVCC changes of one applied entry: one put/delete, or every change of one txn, at one revision. */
export interface KvApplyEvent {
  readonly kind: 'kv';
  /** The Raft index of the entry. */
  readonly index: number;
  /** The revision every change of the entry has. */
  readonly revision: number;
  /** In the order the entry made them; each carries prevKv when a subscriber asked for it (wantsPrevKv). */
  readonly changes: readonly MvccEvent[];
}

/** A change of the cluster's membership or of a member's attributes. */
export interface MemberApplyEvent {
  readonly kind: 'member';
  readonly index: number;
  readonly change: 'add' | 'remove' | 'update' | 'attributes';
  /** The member after the change (for 'remove', as it was known; absent when it was not). */
  readonly member: Member | undefined;
  readonly memberId: bigint;
}

/** An alarm was raised or cleared. */
export interface AlarmApplyEvent {
  readonly kind: 'alarm';
  readonly index: number;
  readonly action: 'activate' | 'deactivate';
  readonly memberId: bigint;
  readonly alarm: number;
}

/**
 * The backend was replaced by a snapshot from the leader: the state jumped to `index` without the
 * entries in between being applied here. Every subscriber must re-read what it derives from the store.
 */
export interface RestoreApplyEvent {
  readonly kind: 'restore';
  readonly index: number;
  readonly revision: number;
}

/**
 * A lease was granted or revoked (by a client, or by the leader because it expired). A revoke's deleted
 * keys arrive first, as the kv event of the same entry. Lock and Election wait on revokes.
 */
export interface LeaseApplyEvent {
  readonly kind: 'lease';
  readonly index: number;
  readonly change: 'grant' | 'revoke';
  readonly leaseId: bigint;
}

export type ApplyEvent = KvApplyEvent | MemberApplyEvent | AlarmApplyEvent | RestoreApplyEvent | LeaseApplyEvent;

/** A subscriber's side of the hub. */
export interface ApplySubscriber {
  /** Shown in logs and errors. */
  readonly name: string;
  /** Ask for prevKv on kv changes (costs a backend read per changed key that existed); read at every entry. */
  readonly wantsPrevKv?: boolean;
  /**
   * False while it would drop kv changes unread (a watch hub with no synced watcher): when no subscriber
   * wants them, the applier may skip building a bulk delete's events. Read at every entry; absent = true.
   */
  readonly wantsKvChanges?: boolean;
  /**
   * One event, synchronously, in apply order. Must not throw and must not wait. Returns false when it
   * cannot take the event (its buffer is at its limit): it is then behind from this event on.
   */
  deliver(ev: ApplyEvent): boolean;
  /**
   * Told once when it fell behind: it got every event before index `missedFromIndex` and none from it on
   * (until it resumes). It catches up from the store and calls its subscription's resume().
   */
  fellBehind(missedFromIndex: number): void;
}

/** A subscriber's registration. */
export interface ApplySubscription {
  /** Behind: events are not delivered until resume(). */
  readonly behind: boolean;
  /** Events not delivered while behind (metrics, tests). */
  readonly missedEvents: number;
  /**
   * Delivery starts again with the next applied entry. Call it once the subscriber reflects the store as
   * it is now (apply runs on the same thread, so "now" is between two applied entries).
   */
  resume(): void;
  /** Stops delivery for good. */
  cancel(): void;
}

/** The most subscribers one member has (watch, lessor, auth cache, and room for a few more). */
export const APPLY_SUBSCRIBERS_MAX = 16;

class Subscription implements ApplySubscription {
  behind = false;
  missedEvents = 0;
  cancelled = false;

  constructor(
    readonly hub: ApplyEventHub,
    readonly sub: ApplySubscriber,
  ) {}

  resume(): void {
    this.behind = false;
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.hub._remove(this);
  }
}

/**
 * Publishes apply events.
 *
 *   const sub = hub.subscribe({ name: 'watch', deliver: (ev) => queue.offer(ev), fellBehind: (i) => catchUp(i) });
 *   // the member's applier:
 *   hub.publish({ kind: 'kv', index, revision, changes });
 */
export class ApplyEventHub {
  private subs: Subscription[] = [];
  /** Index of the last event published (events arrive in apply order). */
  private lastIndex = 0;

  /** True if any subscriber asks for prevKv on kv changes now. */
  get wantsPrevKv(): boolean {
    const subs = this.subs;
    for (let i = 0; i < subs.length; i++) if (subs[i].sub.wantsPrevKv === true) return true;
    return false;
  }

  /** True if a subscriber that is not behind wants kv changes now (see ApplySubscriber.wantsKvChanges). */
  get wantsKvChanges(): boolean {
    const subs = this.subs;
    for (let i = 0; i < subs.length; i++) if (!subs[i].behind && subs[i].sub.wantsKvChanges !== false) return true;
    return false;
  }

  /** True if anyone listens (the applier skips building events nobody reads). */
  get hasSubscribers(): boolean {
    return this.subs.length > 0;
  }

  /** Registers a subscriber; it gets every event published from now on. */
  subscribe(sub: ApplySubscriber): ApplySubscription {
    if (this.subs.length >= APPLY_SUBSCRIBERS_MAX) throw new Error(`apply events: at most ${APPLY_SUBSCRIBERS_MAX} subscribers`);
    const s = new Subscription(this, sub);
    this.subs = [...this.subs, s];
    return s;
  }

  /** Delivers one event to every subscriber that is not behind. Never throws for a subscriber's sake. */
  publish(ev: ApplyEvent): void {
    assert(ev.index >= this.lastIndex, () => `apply event of index ${ev.index} after ${this.lastIndex}: out of apply order`);
    this.lastIndex = ev.index;
    const subs = this.subs;
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i];
      if (s.behind) {
        s.missedEvents++;
        continue;
      }
      if (s.sub.deliver(ev)) continue;
      s.behind = true;
      s.missedEvents++;
      s.sub.fellBehind(ev.index);
    }
  }

  /** @internal */
  _remove(s: Subscription): void {
    this.subs = this.subs.filter((x) => x !== s);
  }
}

/**
 * A subscriber that buffers events up to a limit for a consumer that drains them later (e.g. on the next
 * turn, or from a worker). Past the limit it falls behind; the consumer learns it from `behindFrom`.
 *
 *   const q = new BoundedApplyQueue('lessor', 10_000);
 *   q.subscription = hub.subscribe(q);
 *   setImmediate(() => { for (const ev of q.drain()) ...; if (q.behindFrom) resync(); });
 */
export class BoundedApplyQueue implements ApplySubscriber {
  /** Set by the owner after subscribing. */
  subscription: ApplySubscription | undefined;
  /** The first index not delivered, while behind. */
  behindFrom: number | undefined;
  private queue: ApplyEvent[] = [];

  constructor(
    readonly name: string,
    readonly eventsMax: number,
    readonly wantsPrevKv = false,
  ) {
    assert(eventsMax > 0, 'BoundedApplyQueue needs room for one event');
  }

  get length(): number {
    return this.queue.length;
  }

  deliver(ev: ApplyEvent): boolean {
    if (this.queue.length >= this.eventsMax) return false;
    this.queue.push(ev);
    return true;
  }

  fellBehind(missedFromIndex: number): void {
    this.behindFrom = missedFromIndex;
  }

  /** Takes what is buffered. */
  drain(): ApplyEvent[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }

  /** The consumer caught up from the store: deliveries start again. */
  resume(): void {
    this.behindFrom = undefined;
    this.queue = [];
    this.subscription?.resume();
  }
}
