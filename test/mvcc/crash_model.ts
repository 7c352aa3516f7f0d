// The deterministic write stream of the crash test, shared by the child that writes it and the
// parent that checks what survived.

/** Write transactions in batch i (applied index i). */
export function txnsInBatch(i: number): number {
  return 1 + (i % 4);
}

/** Ops of transaction t of batch i: puts, and now and then a delete (value undefined). */
export function batchOps(i: number, t: number): Array<{ key: Buffer; value: Buffer | undefined }> {
  const ops: Array<{ key: Buffer; value: Buffer | undefined }> = [];
  ops.push({ key: Buffer.from('counter'), value: Buffer.from(String(i)) });
  const size = (i * 131 + t * 17) % 3000;
  ops.push({ key: Buffer.from(`k${(i * 7 + t) % 50}`), value: Buffer.concat([Buffer.from(`${i}.${t}:`), Buffer.alloc(size, 97)]) });
  if ((i + t) % 11 === 0) ops.push({ key: Buffer.from(`k${(i * 3 + t) % 50}`), value: undefined });
  // Now and then a big transaction (several MB in one commit): still all or nothing.
  if (i % 29 === 0 && t === 0) {
    for (let j = 0; j < 3000; j++) ops.push({ key: Buffer.from(`bulk${j}`), value: Buffer.alloc(1000 + (i % 7), 48 + (i % 10)) });
  }
  return ops;
}

/** The key space and revision after applying batches 1..n. */
export function modelAfter(n: number): { keys: Map<string, string>; rev: number } {
  const keys = new Map<string, string>();
  let rev = 1;
  for (let i = 1; i <= n; i++) {
    for (let t = 0; t < txnsInBatch(i); t++) {
      for (const op of batchOps(i, t)) {
        if (op.value === undefined) keys.delete(op.key.toString());
        else keys.set(op.key.toString(), op.value.toString());
      }
      rev++;
    }
  }
  return { keys, rev };
}
