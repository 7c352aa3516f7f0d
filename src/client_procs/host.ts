// The member's side of --client-workers N: forks N client processes with node:cluster (they share the
// client port through this process, which hands out accepted connections round robin), serves each
// one's channel, and replaces a client process that dies. Stopping drains them before the member stops.
import cluster, { type Worker } from 'node:cluster';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { MemberApi } from '../server/member_api.js';
import type { HttpBackend } from '../api/http.js';
import type { MetricJson } from '../metrics.js';
import type { Logger } from '../log.js';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS, type MemberChannelLimits } from './member_channel.js';
import { CHANNEL_FD, CLIENT_PROCESS_ENV, type ClientProcessConfig, type ClientProcessMessage, type MemberMessage } from './protocol.js';

/** The most client processes a member forks. */
export const CLIENT_WORKERS_MAX = 64;
/** A client process that has not reported listening after this long is given up on (start fails). */
const START_TIMEOUT_MS = 30_000;
/** Restarts back off from this delay, doubling per crash within CRASH_WINDOW_MS, up to the max. */
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 5_000;
const CRASH_WINDOW_MS = 10_000;
/** A scrape waits this long for a client process's metrics; one that does not answer is left out of it. */
const METRICS_TIMEOUT_MS = 1000;
/** Metrics requests one client process may have unanswered; past it a scrape leaves the process out. */
const METRICS_PENDING_MAX = 8;

/** Options of ClientWorkers.start. */
export interface ClientWorkersOptions {
  count: number;
  server: MemberApi;
  http: HttpBackend;
  /** The configuration of every client process but its index. */
  config: Omit<ClientProcessConfig, 'index'>;
  log: Logger;
  channelLimits?: MemberChannelLimits;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  channel: MemberChannel | undefined;
  /** Recent exits, for the restart backoff. */
  crashesAtMs: number[];
  restartTimer: NodeJS.Timeout | undefined;
  /** Metrics requests sent to the process and not answered yet, by id. */
  metricsPending: Map<number, (m: MetricJson[] | undefined) => void>;
}

/** The compiled client process entry next to this module (dist/ or a private build alike). */
export function clientEntryPath(): string {
  return fileURLToPath(new URL('./client_main.js', import.meta.url));
}

/**
 * The member's client processes.
 *
 *   const workers = await ClientWorkers.start({ count: 2, server, http: memberHttpBackend(server), config, log });
 *   ...
 *   await workers.stop();   // before server.stop(): in-flight calls still need the member
 */
export class ClientWorkers {
  /** Client processes started to replace ones that died. */
  restarts = 0;
  private readonly slots: Slot[] = [];
  private stopping = false;
  private metricsSeq = 0;
  /** Every first client process listened: from now on a dead one is replaced. */
  private started = false;

  private constructor(private readonly o: ClientWorkersOptions) {}

  /** Forks the client processes and resolves once every one listens on every client URL. */
  static async start(o: ClientWorkersOptions): Promise<ClientWorkers> {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > CLIENT_WORKERS_MAX) {
      throw new RangeError(`--client-workers must be 0..${CLIENT_WORKERS_MAX}, got ${o.count}`);
    }
    if (!cluster.isPrimary) throw new Error('tetcd: client processes are forked by the member only');
    cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.setupPrimary({
      exec: clientEntryPath(),
      args: [],
      // 0-2 shared with the member (logs go where the member's go), 3 the IPC link, 4 the channel.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
    });
    const w = new ClientWorkers(o);
    try {
      await Promise.all(
        Array.from({ length: o.count }, (_, i) => {
          const slot: Slot = {
            index: i,
            worker: undefined,
            channel: undefined,
            crashesAtMs: [],
            restartTimer: undefined,
            metricsPending: new Map(),
          };
          w.slots.push(slot);
          return w.fork(slot);
        }),
      );
    } catch (err) {
      await w.stop(0);
      throw err;
    }
    w.started = true;
    return w;
  }

  /**
   * Each live client process's own metrics (its grpc_server_* counters), asked over the IPC link; a process
   * that does not answer within METRICS_TIMEOUT_MS (or has METRICS_PENDING_MAX requests unanswered) is left out.
   */
  async metricsJson(): Promise<MetricJson[][]> {
    const asks: Promise<MetricJson[] | undefined>[] = [];
    for (const slot of this.slots) {
      const worker = slot.worker;
      if (worker === undefined || worker.isDead() || !worker.isConnected()) continue;
      if (slot.metricsPending.size >= METRICS_PENDING_MAX) continue;
      const id = this.metricsSeq++;
      asks.push(
        new Promise<MetricJson[] | undefined>((resolve) => {
          const timer = setTimeout(() => done(undefined), METRICS_TIMEOUT_MS);
          const done = (m: MetricJson[] | undefined) => {
            clearTimeout(timer);
            slot.metricsPending.delete(id);
            resolve(m);
          };
          slot.metricsPending.set(id, done);
          const m: MemberMessage = { type: 'metrics', id };
          worker.send(m);
        }),
      );
    }
    return (await Promise.all(asks)).filter((m): m is MetricJson[] => m !== undefined);
  }

  /** Client processes alive now. */
  get alive(): number {
    return this.slots.filter((s) => s.worker !== undefined && !s.worker.isDead()).length;
  }

  /** Process IDs of the client processes alive now. */
  get pids(): number[] {
    const out: number[] = [];
    for (const s of this.slots) if (s.worker?.process.pid !== undefined && !s.worker.isDead()) out.push(s.worker.process.pid);
    return out;
  }

  /** The channels being served (tests look at their counters). */
  get channels(): MemberChannel[] {
    const out: MemberChannel[] = [];
    for (const s of this.slots) if (s.channel !== undefined) out.push(s.channel);
    return out;
  }

  /**
   * Drains every client process (it stops accepting, lets unary calls finish for up to timeoutMs, then
   * exits) and waits for them to exit; kills whoever is still there after timeoutMs + 2 s.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    const exits: Promise<void>[] = [];
    for (const s of this.slots) {
      if (s.restartTimer !== undefined) clearTimeout(s.restartTimer);
      const worker = s.worker;
      if (worker === undefined || worker.isDead()) continue;
      exits.push(
        new Promise<void>((resolve) => {
          const killer = setTimeout(() => worker.process.kill('SIGKILL'), timeoutMs + 2000);
          worker.once('exit', () => {
            clearTimeout(killer);
            resolve();
          });
        }),
      );
      const m: MemberMessage = { type: 'drain' };
      if (worker.isConnected()) worker.send(m);
      else worker.process.kill('SIGTERM');
    }
    await Promise.all(exits);
  }

  /** Forks the client process of a slot; resolves when it listens, rejects if it cannot. */
  private fork(slot: Slot): Promise<void> {
    const cfg: ClientProcessConfig = { ...this.o.config, index: slot.index };
    const worker = cluster.fork({ [CLIENT_PROCESS_ENV]: JSON.stringify(cfg) });
    slot.worker = worker;
    const log = this.o.log.with({ 'client-process': slot.index, pid: worker.process.pid });
    const socket = worker.process.stdio[CHANNEL_FD] as Socket | null | undefined;
    if (socket === null || socket === undefined) throw new Error('assertion failed: no channel pipe to the client process');
    const channel = new MemberChannel(socket, this.o.server, this.o.http, log, this.o.channelLimits ?? MEMBER_CHANNEL_DEFAULTS);
    slot.channel = channel;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      const timer = setTimeout(() => {
        if (started) return;
        started = true;
        reject(new Error(`client process ${slot.index} did not start listening within ${START_TIMEOUT_MS} ms`));
        worker.process.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      worker.on('message', (m: ClientProcessMessage) => {
        if (m.type === 'metrics') {
          slot.metricsPending.get(m.id)?.(m.metrics);
        } else if (m.type === 'listening' && !started) {
          started = true;
          clearTimeout(timer);
          log.info('client process is serving');
          resolve();
        } else if (m.type === 'failed' && !started) {
          started = true;
          clearTimeout(timer);
          reject(new Error(`client process ${slot.index} could not listen: ${m.error}`));
        }
      });
      worker.on('exit', (code, signal) => {
        clearTimeout(timer);
        channel.destroy();
        for (const done of [...slot.metricsPending.values()]) done(undefined);
        if (slot.worker === worker) {
          slot.worker = undefined;
          slot.channel = undefined;
        }
        if (!started) {
          started = true;
          reject(new Error(`client process ${slot.index} exited during start-up (${signal ?? code})`));
        }
        // The first start's failure fails the member's start; after that, a dead process is replaced.
        if (this.stopping || !this.started) return;
        log.warn('client process exited; starting another', { code, signal });
        this.scheduleRestart(slot);
      });
    });
  }

  private scheduleRestart(slot: Slot): void {
    if (slot.restartTimer !== undefined) return;
    const now = Date.now();
    slot.crashesAtMs = slot.crashesAtMs.filter((t) => now - t < CRASH_WINDOW_MS);
    slot.crashesAtMs.push(now);
    const delayMs = Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MIN_MS * 2 ** (slot.crashesAtMs.length - 1));
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping) return;
      this.restarts++;
      // A replacement that fails exits too, and its exit schedules the next try.
      this.fork(slot).catch((err: unknown) => {
        this.o.log.error('could not restart a client process; trying again', { 'client-process': slot.index, error: err });
      });
    }, delayMs);
  }
}
