// Typed WAL errors: what the member sees when the log cannot be written or read back.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) errnoNames.set(num, name);

/** Any WAL failure. `code` is an errno name ('ENOSPC', 'EIO', ...) or one of ours ('ECLOSED', 'EQUEUEFULL', ...).
 *  Once a write fails the WAL is poisoned: every later save rejects with the same error. */
export class WalError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'WalError';
    this.code = code;
  }

  /** Builds the error for an errno reported by the writer thread, e.g. `WalError.fromErrno(28, 'fdatasync')`. */
  static fromErrno(errno: number, what: string): WalError {
    const code = errnoNames.get(errno) ?? `E${errno}`;
    return new WalError(code, `wal: ${what || 'write'} failed: ${code}`);
  }
}

/** The writer's queue would pass queueBytesMax: the saves of one event-loop turn were refused and nothing of
 *  them was written; earlier saves are unaffected and the WAL is not poisoned. A bug guard, not flow control
 *  (the member awaits every save before the next one, so its queue never holds more than one Ready).
 *
 *   try { await wal.save(hs, entries); } catch (e) { if (e instanceof WalQueueFullError) stopServingWrites(e); }
 */
export class WalQueueFullError extends WalError {
  /** Bytes of the refused turn. */
  readonly refusedBytes: number;
  readonly queueBytesMax: number;
  constructor(refusedBytes: number, queueBytesMax: number) {
    super(
      'EQUEUEFULL',
      `wal: append of ${refusedBytes} bytes refused: the writer's queue would pass its ` + `limit of ${queueBytesMax} bytes`,
    );
    this.name = 'WalQueueFullError';
    this.refusedBytes = refusedBytes;
    this.queueBytesMax = queueBytesMax;
  }
}

/** The log on disk is damaged somewhere a crash cannot explain; recovery refuses to go on. */
export class WalCorruptError extends WalError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, why: string) {
    super('ECORRUPT', `wal: corrupt record in ${file} at offset ${offset}: ${why}`);
    this.name = 'WalCorruptError';
    this.file = file;
    this.offset = offset;
  }
}

/** `Wal.open(dir, from)` was given a snapshot that is not recorded in the (retained part of the) log. */
export class WalSnapshotNotFoundError extends WalError {
  constructor(index: number, term: number, why: string) {
    super('ESNAPSHOTNOTFOUND', `wal: snapshot {index: ${index}, term: ${term}} not found: ${why}`);
    this.name = 'WalSnapshotNotFoundError';
  }
}
