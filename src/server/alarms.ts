// Alarms (NOSPACE when the backend quota is exhausted, CORRUPT when a corruption check fails): raised
// and disarmed through Raft, kept in the backend's meta tables so they survive restarts, and consulted
// by the applier (NOSPACE refuses puts, CORRUPT refuses KV and lease operations) and by /health.
import { AlarmType, AlarmType_names, type AlarmMember } from '../proto/rpc.js';
import type { MetaStore } from './membership.js';

const BUCKET = 'alarm';

/** The alarm bucket's key: member ID (8 bytes big-endian), then the alarm type (4 bytes big-endian). */
export function alarmKey(memberId: bigint, type: number): Buffer {
  const k = Buffer.allocUnsafe(12);
  k.writeBigUInt64BE(memberId, 0);
  k.writeUInt32BE(type, 8);
  return k;
}

/** etcd's text form of an alarm (gogo proto's compact text): `memberID:<decimal> alarm:NOSPACE `. */
export function alarmText(a: AlarmMember): string {
  return `memberID:${a.memberID} alarm:${AlarmType_names[a.alarm] ?? a.alarm} `;
}

/**
 * The active alarms.
 *
 *   const alarms = AlarmStore.load(store);
 *   alarms.activate(memberId, AlarmType.NOSPACE, store);  // while applying an AlarmRequest
 */
export class AlarmStore {
  private readonly active = new Map<string, AlarmMember>();

  static load(store: MetaStore): AlarmStore {
    const a = new AlarmStore();
    for (const [k] of store.metaScan(BUCKET)) {
      const b = Buffer.from(k);
      if (b.length !== 12) continue;
      const m = { memberID: b.readBigUInt64BE(0), alarm: b.readUInt32BE(8) };
      a.active.set(b.toString('hex'), m);
    }
    return a;
  }

  /** Raises an alarm; returns it (the existing one if it was already raised). */
  activate(memberId: bigint, type: number, store: MetaStore): AlarmMember {
    const key = alarmKey(memberId, type);
    const hex = key.toString('hex');
    const existing = this.active.get(hex);
    if (existing) return existing;
    const m = { memberID: memberId, alarm: type };
    this.active.set(hex, m);
    store.metaPut(BUCKET, key, new Uint8Array(0));
    return m;
  }

  /** Disarms an alarm; returns it, or undefined if it was not raised. */
  deactivate(memberId: bigint, type: number, store: MetaStore): AlarmMember | undefined {
    const key = alarmKey(memberId, type);
    const hex = key.toString('hex');
    const m = this.active.get(hex);
    if (!m) return undefined;
    this.active.delete(hex);
    store.metaDelete(BUCKET, key);
    return m;
  }

  /** Alarms of a type (NONE: all), ordered by member then type. */
  get(type: number = AlarmType.NONE): AlarmMember[] {
    return [...this.active.values()]
      .filter((m) => type === AlarmType.NONE || m.alarm === type)
      .sort((a, b) => (a.memberID < b.memberID ? -1 : a.memberID > b.memberID ? 1 : a.alarm - b.alarm));
  }

  has(type: number): boolean {
    for (const m of this.active.values()) if (m.alarm === type) return true;
    return false;
  }

  get size(): number {
    return this.active.size;
  }
}
