// Free loopback ports for tests and the bench: a random port that binds on 127.0.0.1 right now, never handed out
// twice by this process (two members started back to back must not collide), and never inside the kernel's
// ephemeral range. A port from that range can be free when probed and taken a moment later by the source port of
// some outgoing connection (the tests open thousands), and the member then fails to start with EADDRINUSE (seen
// in CI: a client port 37162 probed free, then taken before the member bound it).
import { readFileSync } from 'node:fs';
import net from 'node:net';

const PORT_MIN = 10000;
const PORT_MAX = 60000;
const ATTEMPTS_MAX = 400;
const handedOut = new Set<number>();

/** The kernel's ephemeral port range (Linux's default 32768-60999 when it cannot be read). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo <= hi) return [lo, hi];
  } catch {
    // not Linux: fall through to the default
  }
  return [32768, 60999];
}

/**
 * The candidate ports: PORT_MIN..PORT_MAX minus the ephemeral range, and, when the test runner runs files side by
 * side, only this file's share (TETCD_PORT_SLOT of TETCD_PORT_SLOTS; each stretch outside the ephemeral range is
 * cut into that many contiguous pieces, so blocks of neighbouring ports exist too): two processes probing the same
 * free port and both handing it out is the collision the per-process `handedOut` set cannot see. Sorted.
 */
function candidates(): number[] {
  const [lo, hi] = ephemeralRange();
  const slots = Math.max(1, Number(process.env.TETCD_PORT_SLOTS ?? 1));
  const slot = Number(process.env.TETCD_PORT_SLOT ?? 0) % slots;
  const out: number[] = [];
  const stretches: [number, number][] = [
    [PORT_MIN, Math.min(PORT_MAX, lo - 1)],
    [Math.max(PORT_MIN, hi + 1), PORT_MAX],
  ];
  for (const [a, b] of stretches) {
    if (a > b) continue;
    const piece = Math.floor((b - a + 1) / slots);
    for (let p = a + slot * piece; p < a + (slot + 1) * piece; p++) out.push(p);
  }
  return out;
}

let pool: number[] | null = null;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1, outside the ephemeral range, that was free a moment ago. */
export async function freePort(): Promise<number> {
  pool ??= candidates();
  if (pool.length === 0) throw new Error(`freePort: ${PORT_MIN}-${PORT_MAX} lies inside the ephemeral port range`);
  for (let i = 0; i < ATTEMPTS_MAX; i++) {
    const port = pool[Math.floor(Math.random() * pool.length)];
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port after ${ATTEMPTS_MAX} tries`);
}

/**
 * `count` neighbouring TCP ports on 127.0.0.1 (the first is returned), outside the ephemeral range and in this
 * process's share, all free a moment ago and never handed out before by this process.
 */
export async function freeBlock(count: number): Promise<number> {
  pool ??= candidates();
  const ports = pool;
  // Bases whose whole block lies in the pool (the pool is sorted; its pieces are contiguous).
  const bases = ports.filter((p, i) => i + count - 1 < ports.length && ports[i + count - 1] === p + count - 1);
  if (bases.length === 0) throw new Error(`freeBlock: no ${count} neighbouring ports in this process's share`);
  for (let i = 0; i < ATTEMPTS_MAX; i++) {
    const base = bases[Math.floor(Math.random() * bases.length)]!;
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = !handedOut.has(p) && (await bindable(p));
    if (ok) {
      for (let p = base; p < base + count; p++) handedOut.add(p);
      return base;
    }
  }
  throw new Error(`freeBlock: no ${count} free neighbouring ports after ${ATTEMPTS_MAX} tries`);
}
