// Maintenance.Snapshot as etcd 3.4 serves it (v3rpc/maintenance.go): admin only, the backend as a bbolt
// file in chunks with remaining_bytes counting down, then one last message whose blob is the file's
// sha256 (etcdctl appends it, and `snapshot restore` checks it). The member writes the file off the event
// loop (server/client_snapshot.ts); this streams it a chunk at a time, waiting while the client reads
// slowly, so a stream holds at most its writer's queue plus one chunk.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { MemberApi } from '../server/member_api.js';
import type { SnapshotRequest, SnapshotResponseInit } from '../proto/rpc.js';
import type { CallContext } from './context.js';
import { requireAdminAsEtcd } from './auth_rpc.js';
import { EtcdError, GrpcCode } from '../errors.js';

/**
 * Bytes of the file per response message. etcd sends 32 KiB; here 64 KiB messages took etcdctl 4.6-5.1 s for a
 * 272 MiB file and 1 MiB ones 2.1-2.4 s (per-message costs on both ends). Every gRPC client etcd supports
 * accepts 4 MiB messages at least.
 */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** What Snapshot needs of its stream (rpc.ts's RpcStreamWriter; named here so rpc.ts can import this file). */
interface SnapshotWriter {
  write(m: SnapshotResponseInit): boolean;
  readonly writable: boolean;
  drained(): Promise<void>;
  readonly done: boolean;
}

/** Streams a snapshot of the member's backend; resolves when the last message is written. */
export async function serveSnapshot(s: MemberApi, _req: SnapshotRequest, out: SnapshotWriter, ctx: CallContext): Promise<void> {
  await requireAdminAsEtcd(s, ctx);
  const abort = new AbortController();
  ctx.onCancel(() => abort.abort());
  const snap = await s.snapshot(abort.signal);
  try {
    const fh = await fs.promises.open(snap.path, 'r');
    try {
      const total = snap.sizeBytes;
      const h = createHash('sha256');
      let sent = 0;
      while (sent < total) {
        if (!out.writable) await out.drained();
        if (out.done || ctx.cancelled) throw new EtcdError(GrpcCode.Canceled, 'context canceled');
        const chunk = Buffer.allocUnsafe(Math.min(SNAPSHOT_CHUNK_BYTES, total - sent));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, sent);
        if (bytesRead !== chunk.length)
          throw new EtcdError(GrpcCode.Unknown, `snapshot: file ended at ${sent + bytesRead} of ${total} bytes`);
        sent += bytesRead;
        h.update(chunk);
        out.write({ remaining_bytes: total - sent, blob: chunk });
      }
      if (!out.writable) await out.drained();
      out.write({ remaining_bytes: 0, blob: h.digest() });
    } finally {
      await fh.close();
    }
  } finally {
    await snap.release();
  }
}
