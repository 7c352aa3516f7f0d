// Does decoding large gateway bodies on a thread pool pay (`node dist/bench/http/decode.bench.js`)? For
// put bodies of several value sizes, the event loop's busy time per request when the gateway decodes inline
// (text, JSON.parse, requestFromJson, encode, frame: what Gateway.callWith does) and when a Piscina thread
// does it (the body moved there, the framed request moved back), with `inflight` requests at once.
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { KV } from '../../src/proto/rpc.js';
import { frameMessage } from '../../src/api/grpc/protocol.js';

const SIZES = [256, 16 * 1024, 48 * 1024, 256 * 1024, 1024 * 1024];
const INFLIGHT = 8;

function bodyOf(valueBytes: number): Buffer {
  return Buffer.from(
    JSON.stringify({ key: Buffer.from('k').toString('base64'), value: Buffer.alloc(valueBytes, 0x61).toString('base64') }),
  );
}

function inline(body: Buffer): Buffer {
  return frameMessage(KV.methods.Put.encodeRequest(KV.methods.Put.requestFromJson(JSON.parse(body.toString('utf8')))));
}

async function measure(n: number, one: () => Promise<unknown>): Promise<{ busyUsPerReq: number; wallUsPerReq: number }> {
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next++ < n) await one();
    }),
  );
  const wall = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  return { busyUsPerReq: (elu.active * 1000) / n, wallUsPerReq: (wall * 1000) / n };
}

async function main(): Promise<void> {
  const pool = new Piscina({
    filename: new URL('./decode_worker.js', import.meta.url).href,
    minThreads: 2,
    maxThreads: 2,
    idleTimeout: 2 ** 31 - 1,
  });
  const rows: string[] = [
    '| value bytes | body bytes | inline: loop busy µs/req | pool: loop busy µs/req | pool: wall µs/req (8 in flight) |',
    '|---:|---:|---:|---:|---:|',
  ];
  for (const size of SIZES) {
    const body = bodyOf(size);
    const n = Math.max(20, Math.min(20_000, Math.floor(200_000_000 / body.length)));
    // Warm both paths up first.
    for (let i = 0; i < Math.min(n, 200); i++) inline(body);
    const runInline = async (): Promise<void> => void inline(body);
    const runPool = async (): Promise<void> => {
      const copy = new Uint8Array(body.length);
      copy.set(body);
      const out = (await pool.run(copy, { transferList: [copy.buffer] })) as ArrayBuffer;
      if (out.byteLength < size) throw new Error('short result');
    };
    await measure(Math.min(n, 200), runPool);
    const a = await measure(n, runInline);
    const b = await measure(n, runPool);
    rows.push(`| ${size} | ${body.length} | ${a.busyUsPerReq.toFixed(1)} | ${b.busyUsPerReq.toFixed(1)} | ${b.wallUsPerReq.toFixed(1)} |`);
  }
  await pool.destroy();
  process.stdout.write(`${rows.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
