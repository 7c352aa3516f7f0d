// A small structured logger: one JSON object per line on stderr, shaped like etcd's zap output
// ({"level","ts","msg",...fields}), filtered by --log-level.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, panic: 4, fatal: 5 };

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

function jsonValue(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString(16);
  if (v instanceof Error) return v.message;
  if (v instanceof Uint8Array) return Buffer.from(v).toString();
  return v;
}

class JsonLogger implements Logger {
  constructor(
    private readonly minRank: number,
    private readonly base: LogFields,
    private readonly write: (line: string) => void,
  ) {}

  private log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (rank[level] < this.minRank) return;
    const line = { level, ts: new Date().toISOString(), msg, ...this.base, ...fields };
    this.write(JSON.stringify(line, jsonValue) + '\n');
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
  with(fields: LogFields): Logger {
    return new JsonLogger(this.minRank, { ...this.base, ...fields }, this.write);
  }
}

/**
 * A logger writing JSON lines at `level` and above.
 *
 *   const log = newLogger('info'); log.info('ready to serve client requests', { address: '127.0.0.1:2379' });
 */
export function newLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return new JsonLogger(rank[level], {}, write);
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
