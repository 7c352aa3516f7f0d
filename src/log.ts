// The member's structured logs: one JSON object per line, shaped like etcd 3.5's zap output
// ({"level":"info","ts":"2026-01-02T03:04:05.678Z","msg":"...",...fields}), filtered by --log-level and
// written to every --log-outputs target (stderr, stdout, default = stderr, file paths, appended).
// Through pino: its destinations are asynchronous (a slow output never blocks the event loop) and keep at
// most LOG_BUFFER_BYTES_MAX unwritten bytes each; lines past that are dropped and counted (droppedLines).
// Nothing logs request bodies, tokens or passwords (test/server/logs.test.ts holds every module to it).
import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger as PinoLogger, type DestinationStream } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';

export type LogFields = Record<string, unknown>;

/** What every module logs through. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

/** Unwritten bytes one output may hold before lines are dropped (a stalled terminal, a full pipe or disk). */
export const LOG_BUFFER_BYTES_MAX = 4 * 1024 * 1024;

/** Lines dropped because an output's buffer was full, since start (all outputs). */
export const logDrops = { lines: 0 };

/** zap's values as etcd shows them: IDs in hex, errors by their message, bytes as text. */
function zapValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString(16);
  if (v instanceof Error) return v.message;
  if (v instanceof Uint8Array) return Buffer.from(v).toString();
  return v;
}

function zapFields(o: Record<string, unknown>): Record<string, unknown> {
  for (const k in o) {
    const v = o[k];
    if (typeof v === 'bigint' || v instanceof Error || v instanceof Uint8Array) o[k] = zapValue(v);
  }
  return o;
}

/**
 * zap's order: level, ts, msg, then the logger's fields and the line's (pino would put msg last; greps like
 * `msg.*ENOSPC` and people read it in etcd's order). The message travels as the first key of the object.
 */
class PinoAdapter implements Logger {
  constructor(
    private readonly p: PinoLogger<'panic'>,
    private readonly base: LogFields | undefined,
  ) {}
  private line(msg: string, fields: LogFields | undefined): LogFields {
    return { msg, ...this.base, ...fields };
  }
  debug(msg: string, fields?: LogFields): void {
    if (this.p.isLevelEnabled('debug')) this.p.debug(this.line(msg, fields));
  }
  info(msg: string, fields?: LogFields): void {
    this.p.info(this.line(msg, fields));
  }
  warn(msg: string, fields?: LogFields): void {
    this.p.warn(this.line(msg, fields));
  }
  error(msg: string, fields?: LogFields): void {
    this.p.error(this.line(msg, fields));
  }
  with(fields: LogFields): Logger {
    return new PinoAdapter(this.p, { ...this.base, ...fields });
  }
}

/** Where lines go: a stream for each --log-outputs target. */
function destination(target: string, bufferBytesMax: number): DestinationStream {
  // A file is opened here, synchronously: a bad path fails the start, and lines written before the
  // process exits are never lost to a destination still opening.
  let fd: number;
  if (target === 'stderr' || target === 'default') fd = 2;
  else if (target === 'stdout') fd = 1;
  else {
    mkdirSync(dirname(target), { recursive: true });
    fd = openSync(target, 'a');
  }
  const d = pino.destination({ fd, sync: false, maxLength: bufferBytesMax });
  d.on('drop', () => {
    logDrops.lines++;
  });
  return d;
}

/** Options of newLogger beyond the level. */
export interface LogOptions {
  /** --log-outputs: 'stderr', 'stdout', 'default' (stderr) or file paths. Default: stderr. */
  outputs?: readonly string[];
  /** Where lines go instead of outputs (tests): called with each line, synchronously. */
  write?: (line: string) => void;
  /** Unwritten bytes an output may hold (default LOG_BUFFER_BYTES_MAX). */
  bufferBytesMax?: number;
}

/**
 * A logger writing JSON lines at `level` and above.
 *
 *   const log = newLogger('info', { outputs: ['stderr', '/var/log/etcd.log'] });
 *   log.info('ready to serve client requests');
 */
export function newLogger(level: LogLevel, o: LogOptions | ((line: string) => void) = {}): Logger {
  const opts: LogOptions = typeof o === 'function' ? { write: o } : o;
  let stream: DestinationStream;
  if (opts.write !== undefined) {
    const write = opts.write;
    stream = { write: (line: string) => write(line) };
  } else {
    const outputs = opts.outputs === undefined || opts.outputs.length === 0 ? ['stderr'] : [...new Set(opts.outputs)];
    const dests = outputs.map((t) => destination(t, opts.bufferBytesMax ?? LOG_BUFFER_BYTES_MAX));
    stream = dests.length === 1 ? dests[0] : pino.multistream(dests.map((d) => ({ stream: d, level: 'debug' as const })));
  }
  const p = pino<'panic'>(
    {
      level,
      customLevels: { panic: 55 },
      base: undefined,
      messageKey: 'msg',
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: {
        level: (label) => ({ level: label }),
        log: zapFields,
      },
    },
    stream,
  );
  return new PinoAdapter(p, undefined);
}

/** A logger that drops everything (tests, libraries used standalone). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with() {
    return silentLogger;
  },
};
