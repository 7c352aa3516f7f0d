// freePort and freeBlock never hand out a port from the kernel's ephemeral range (a port there can be taken by an
// outgoing connection's source port between the probe and the member's bind), never the same port twice, and
// files the runner runs side by side (TETCD_PORT_SLOT of TETCD_PORT_SLOTS) draw from disjoint shares.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freeBlock, freePort } from '../../tools/lib/ports.js';

const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);

test('freePort and freeBlock: 300 ports and 20 blocks of 9, all distinct, none in the ephemeral range', async () => {
  const seen = new Set<number>();
  const take = (p: number): void => {
    assert.ok(p < lo || p > hi, `port ${p} lies in the ephemeral range ${lo}-${hi}`);
    assert.not.ok(seen.has(p), `port ${p} handed out twice`);
    seen.add(p);
  };
  for (let i = 0; i < 300; i++) take(await freePort());
  for (let i = 0; i < 20; i++) {
    const base = await freeBlock(9);
    for (let p = base; p < base + 9; p++) take(p);
  }
});

test('two runner slots draw from disjoint shares', () => {
  const lib = fileURLToPath(new URL('../../tools/lib/ports.js', import.meta.url));
  const draw = (slot: number): number[] =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { freePort, freeBlock } = await import(${JSON.stringify(lib)}); const out = []; for (let i = 0; i < 100; i++) out.push(await freePort()); const b = await freeBlock(30); for (let p = b; p < b + 30; p++) out.push(p); console.log(JSON.stringify(out));`,
        ],
        { env: { ...process.env, TETCD_PORT_SLOT: String(slot), TETCD_PORT_SLOTS: '2' }, encoding: 'utf8' },
      ),
    ) as number[];
  const a = draw(0);
  const b = draw(1);
  const bs = new Set(b);
  const both = a.filter((p) => bs.has(p));
  assert.equal(both, [], 'a port in both shares');
  // The shares are not arbitrary halves of one draw: each slot keeps to its own side of every stretch.
  const lowA = a.filter((p) => p < lo);
  const lowB = b.filter((p) => p < lo);
  if (lowA.length > 0 && lowB.length > 0) assert.ok(Math.max(...lowA) < Math.min(...lowB), 'slot 0 below slot 1');
});

test.run();
