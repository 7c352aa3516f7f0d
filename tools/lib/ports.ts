// Free loopback ports for tests and the bench: a random port in 20000-60000 that binds on 127.0.0.1 right now, never
// handed out twice by this process (two members started back to back must not collide).
import net from 'node:net';

const PORT_MIN = 20000;
const PORT_MAX = 60000;
const ATTEMPTS_MAX = 200;
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 in 20000-60000 that was free a moment ago. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < ATTEMPTS_MAX; i++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port in ${PORT_MIN}-${PORT_MAX} after ${ATTEMPTS_MAX} tries`);
}
