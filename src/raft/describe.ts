// Human-readable one-line descriptions of Raft's data, in etcd's notation ("1->2 MsgApp Term:1 Log:1/2"),
// for logs, debugging and the scenario tests' expected outputs.

import { decodeConfChange, decodeConfChangeV2 } from './codec.js';
import { describeChanges } from './confchange.js';
import { RaftDecodeError } from './errors.js';
import type { Ready } from './rawnode.js';
import { stateName } from './raft.js';
import {
  confChangeAsV2,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  isEmptySnap,
  type Message,
  MessageType,
  type Snapshot,
  type SoftState,
} from './types.js';

/** Renders an entry's payload. */
export type EntryFormatter = (data: Uint8Array) => string;

/** Go's %q of bytes, roughly: printable ASCII as is, the rest escaped. */
function quoteBytes(data: Uint8Array): string {
  let s = '"';
  for (const b of data) {
    if (b === 0x22) s += '\\"';
    else if (b === 0x5c) s += '\\\\';
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return s + '"';
}

const entryTypeNames = ['EntryNormal', 'EntryConfChange', 'EntryConfChangeV2'];

/** "term/index Type payload". Conf changes show as "v2 l3 r4". */
export function describeEntry(e: Entry, f: EntryFormatter = quoteBytes): string {
  let formatted: string;
  try {
    if (e.type === EntryType.Normal) formatted = f(e.data);
    else if (e.type === EntryType.ConfChange) formatted = describeChanges(confChangeAsV2(decodeConfChange(e.data)).changes);
    else formatted = describeChanges(decodeConfChangeV2(e.data).changes);
  } catch (err) {
    if (!(err instanceof RaftDecodeError)) throw err;
    formatted = err.message;
  }
  return `${e.term}/${e.index} ${entryTypeNames[e.type]}${formatted !== '' ? ' ' + formatted : ''}`;
}

/** One entry per line. */
export function describeEntries(ents: Entry[], f?: EntryFormatter): string {
  return ents.map((e) => describeEntry(e, f) + '\n').join('');
}

/** "Term:2 Vote:1 Commit:5". */
export function describeHardState(hs: HardState): string {
  return `Term:${hs.term}${hs.vote !== 0n ? ` Vote:${hs.vote.toString(16)}` : ''} Commit:${hs.commit}`;
}

/** "Lead:1 State:StateLeader". */
function describeSoftState(ss: SoftState): string {
  return `Lead:${ss.lead.toString(16)} State:${stateName(ss.raft_state)}`;
}

/** "Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false". */
export function describeConfState(cs: ConfState): string {
  const list = (ids: bigint[]) => `[${ids.map((i) => i.toString(16)).join(' ')}]`;
  return `Voters:${list(cs.voters)} VotersOutgoing:${list(cs.voters_outgoing)} Learners:${list(cs.learners)} LearnersNext:${list(cs.learners_next)} AutoLeave:${cs.auto_leave}`;
}

/** "Index:5 Term:1 ConfState:...". */
function describeSnapshot(s: Snapshot): string {
  const md = s.metadata;
  return `Index:${md.index} Term:${md.term} ConfState:${describeConfState(md.conf_state)}`;
}

/** "1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal ""]". */
export function describeMessage(m: Message, f?: EntryFormatter): string {
  let s = `${m.from.toString(16)}->${m.to.toString(16)} ${MessageType[m.type]} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map((e) => describeEntry(e, f)).join(', ')}]`;
  if (m.snapshot !== undefined && !isEmptySnap(m.snapshot)) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}

/** A multi-line description of a Ready, or "<empty Ready>". */
export function describeReady(rd: Ready, f?: EntryFormatter): string {
  let s = '';
  if (rd.softState !== undefined) s += describeSoftState(rd.softState) + '\n';
  if (rd.hardState !== undefined) s += `HardState ${describeHardState(rd.hardState)}\n`;
  if (rd.readStates.length > 0) {
    s += `ReadStates [${rd.readStates.map((r) => `{${r.index} ${quoteBytes(r.request_ctx)}}`).join(' ')}]\n`;
  }
  if (rd.entries.length > 0) s += 'Entries:\n' + describeEntries(rd.entries, f);
  if (rd.snapshot !== undefined && !isEmptySnap(rd.snapshot)) s += `Snapshot ${describeSnapshot(rd.snapshot)}\n`;
  if (rd.committedEntries.length > 0) s += 'CommittedEntries:\n' + describeEntries(rd.committedEntries, f);
  if (rd.messages.length > 0) s += 'Messages:\n' + rd.messages.map((m) => describeMessage(m, f) + '\n').join('');
  return s !== '' ? `Ready MustSync=${rd.mustSync}:\n${s}` : '<empty Ready>';
}
