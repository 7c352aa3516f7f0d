// The connection that calls arriving from outside HTTP/2 belong to (the JSON gateway hands the gRPC server
// streams of its own, api/gateway/call.ts): no socket, nothing to ping, closed when the server stops.
import type { Socket } from 'node:net';
import type { GrpcSession } from './call.js';

/**
 * A GrpcSession with no transport under it.
 *
 *   const session = new LocalSession();
 *   session.close();   // 'close' listeners run; the server forgets it
 */
export class LocalSession implements GrpcSession {
  // biome-ignore lint/suspicious/noExplicitAny: node:events' listener type (GrpcSession.on)
  private readonly closeListeners: ((...args: any[]) => void)[] = [];
  private closedFlag = false;

  get destroyed(): boolean {
    return this.closedFlag;
  }
  get closed(): boolean {
    return this.closedFlag;
  }
  /** No socket: the peer address of its calls is '' and they carry no TLS certificate. */
  get socket(): Socket {
    return undefined as unknown as Socket;
  }
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const fn of this.closeListeners.splice(0)) fn();
  }
  destroy(): void {
    this.close();
  }
  goaway(): void {}
  /** Answered at once: there is no peer to be slow. */
  ping(callback: (err: Error | null, duration: number, payload: Buffer) => void): boolean {
    queueMicrotask(() => callback(null, 0, EMPTY));
    return true;
  }
  setLocalWindowSize(): void {}
  // biome-ignore lint/suspicious/noExplicitAny: node:events' listener type (GrpcSession.on)
  on(event: string, listener: (...args: any[]) => void): this {
    if (event === 'close') this.closeListeners.push(listener);
    return this;
  }
}

const EMPTY = Buffer.alloc(0);
