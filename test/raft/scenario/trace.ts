// What a scenario did, as data: every Ready handled, message sent, delivered or dropped, tick and error,
// and each member's state after every command. The property checks (properties.ts) read it, so what a
// scenario claims is asserted on the run itself, not on its transcript (which a rewrite regenerates).

import type { Ready, Status } from '../../../src/raft/rawnode.js';
import type { ConfState, Entry, HardState, Message, NodeId } from '../../../src/raft/types.js';
import { MessageType, StateType } from '../../../src/raft/types.js';
import type { TestCase } from './datadriven.js';

/** One member as seen from outside at one moment. */
export interface NodeView {
  id: NodeId;
  state: StateType;
  term: number;
  vote: NodeId;
  lead: NodeId;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  /** The active configuration. */
  config: ConfState;
  /** Leader only. */
  progress: Status['progress'];
  /** The entries the member holds (unstable included). */
  log: Entry[];
  /** What the member has persisted: the storage's hard state. */
  persisted: HardState;
}

export type TraceEvent =
  /** A Ready was handled: persisted (hard state, entries, snapshot), applied, its messages queued. */
  | { kind: 'ready'; node: NodeId; ready: Ready; after: NodeView }
  /** A message a Ready produced; `lost` when isolation swallowed it. */
  | { kind: 'send'; msg: Message; lost: boolean }
  /** A message handed to its recipient (`after`: the recipient once it stepped it), or dropped (or to no such member). */
  | { kind: 'deliver'; msg: Message; dropped: boolean; after: NodeView | undefined }
  | { kind: 'tick'; node: NodeId; after: NodeView }
  /** A command failed with a RaftError or a step error; `name` is the error class. */
  | { kind: 'error'; name: string; message: string };

/** One command of the scenario, what happened during it and every member afterwards. */
export interface TraceStep {
  cmd: TestCase;
  events: TraceEvent[];
  after: Map<NodeId, NodeView>;
}

/** The record of one scenario run, with the queries the property checks use. */
export class Trace {
  readonly steps: TraceStep[] = [];

  /** Starts the record of a command (Env calls this). */
  begin(cmd: TestCase): void {
    this.steps.push({ cmd, events: [], after: new Map() });
  }

  record(e: TraceEvent): void {
    const step = this.steps[this.steps.length - 1];
    if (step === undefined) throw new Error('trace: event outside a command');
    step.events.push(e);
  }

  /** The index of the `nth` (0-based) command whose line is exactly `cmdLine`; throws if there is none. */
  stepIndex(cmdLine: string, nth = 0): number {
    let seen = 0;
    for (let i = 0; i < this.steps.length; i++) {
      if (this.steps[i].cmd.cmdLine.trim() === cmdLine) {
        if (seen === nth) return i;
        seen++;
      }
    }
    throw new Error(`trace: no command "${cmdLine}" (#${nth}) in the scenario`);
  }

  /** The index of the first command after step `after` whose line is exactly `cmdLine`. */
  nextIndex(cmdLine: string, after: number): number {
    for (let i = after + 1; i < this.steps.length; i++) if (this.steps[i].cmd.cmdLine.trim() === cmdLine) return i;
    throw new Error(`trace: no command "${cmdLine}" after step ${after}`);
  }

  step(cmdLine: string, nth = 0): TraceStep {
    return this.steps[this.stepIndex(cmdLine, nth)];
  }

  /** Every member after the last command. */
  get final(): Map<NodeId, NodeView> {
    return this.steps[this.steps.length - 1].after;
  }

  /** One member after the last command. */
  node(id: number | NodeId): NodeView {
    const v = this.final.get(BigInt(id));
    if (v === undefined) throw new Error(`trace: no node ${id}`);
    return v;
  }

  /** Events of steps [from, to) (all by default), each with its step index. */
  events(from = 0, to = this.steps.length): Array<TraceEvent & { step: number }> {
    const out: Array<TraceEvent & { step: number }> = [];
    for (let i = from; i < to; i++) for (const e of this.steps[i].events) out.push({ ...e, step: i });
    return out;
  }

  /** Messages Readies produced (lost ones included), in order. */
  sent(from = 0, to = this.steps.length): Message[] {
    const out: Message[] = [];
    for (const e of this.events(from, to)) if (e.kind === 'send') out.push(e.msg);
    return out;
  }
}

/** Readable names for assertion messages. */
export function msgName(m: Message): string {
  return `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term} index=${m.index} commit=${m.commit}${m.reject ? ' rejected' : ''}`;
}

export function stateOf(v: NodeView): string {
  return `${v.id}: ${StateType[v.state]} term=${v.term} lead=${v.lead} commit=${v.commit}`;
}
