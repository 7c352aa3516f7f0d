// freePort never hands out a port from the kernel's ephemeral range (a port there can be taken by an outgoing
// connection's source port between the probe and the member's bind) and never the same port twice.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort } from '../../tools/lib/ports.js';

test('freePort: 300 ports, all distinct, none in the ephemeral range', async () => {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const slots = Number(process.env.TETCD_PORT_SLOTS ?? 1);
  const slot = Number(process.env.TETCD_PORT_SLOT ?? 0);
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const p = await freePort();
    assert.ok(p < lo || p > hi, `port ${p} lies in the ephemeral range ${lo}-${hi}`);
    assert.not.ok(seen.has(p), `port ${p} handed out twice`);
    if (slots > 1) assert.is(p % slots, slot, `port ${p} outside this runner slot (${slot} of ${slots})`);
    seen.add(p);
  }
});

test.run();
