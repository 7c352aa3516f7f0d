// Key comparison for the key index: Buffer.compare (a call into C++) against mvcc's compareKeys (a
// JavaScript loop up to 64 bytes), measured where it matters: lookups in a sorted-btree of 100k keys.
//
//   node dist/bench/mvcc/compare.bench.js
import sortedBtree from 'sorted-btree';
import { compareKeys } from '../../src/mvcc/key_index.js';
import { rng as seededRng } from '../../tools/lib/rng.js';

const BTree = sortedBtree.default;
type Cmp = (a: Uint8Array, b: Uint8Array) => number;

function keysOf(count: number, prefix: string, randomBytes: number, seed: number): Buffer[] {
  const rng = seededRng(seed);
  const p = Buffer.from(prefix);
  return Array.from({ length: count }, () => {
    const k = Buffer.alloc(p.length + randomBytes);
    p.copy(k);
    for (let i = p.length; i < k.length; i++) k[i] = Math.floor(rng() * 256);
    return k;
  });
}

/** ns per lookup, median of 5 runs of `lookups` lookups each. */
function measure(cmp: Cmp, keys: Buffer[], lookups: number): number {
  const tree = new BTree<Uint8Array, number>(undefined, cmp, 64);
  keys.forEach((k, i) => tree.set(k, i));
  const probes = keys.map((k) => Buffer.from(k)); // other objects, same bytes: as requests bring them
  const runs: number[] = [];
  let sink = 0;
  for (let r = 0; r < 6; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < lookups; i++) sink += tree.get(probes[i % probes.length]) ?? 0;
    const ns = Number(process.hrtime.bigint() - t0) / lookups;
    if (r > 0) runs.push(ns); // the first run warms up
  }
  if (sink === -1) console.log(sink);
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

const cases: Array<[string, Buffer[]]> = [
  ["8 B random keys (the bench's puts)", keysOf(100_000, '', 8, 1)],
  ['/registry/pods/default/ + 16 B (Kubernetes-like, 39 B)', keysOf(100_000, '/registry/pods/default/', 16, 2)],
  ['100 B keys, 84 B common prefix', keysOf(100_000, 'p'.repeat(84), 16, 3)],
];
console.log('| keys (100k in the tree) | Buffer.compare ns/lookup | compareKeys ns/lookup | ratio |');
console.log('|---|---:|---:|---:|');
for (const [name, keys] of cases) {
  const a = measure((x, y) => Buffer.compare(x, y), keys, 1_000_000);
  const b = measure(compareKeys, keys, 1_000_000);
  console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(2)} |`);
}
