// Peer traffic between member processes: one outgoing TCP (or TLS) stream per peer carrying framed Raft
// messages, and a listener accepting the streams of the others. Queues are bounded per peer; a slow or
// dead peer loses messages (Raft retransmits) and never blocks the others or grows memory.
import net from 'node:net';
import tls from 'node:tls';
import { FrameReader, FrameType, PEER_MAGIC, encodeFrame, writeFrameHeader, FRAME_HEADER_BYTES } from './frame.js';
import { type Logger, silentLogger } from '../log.js';

export interface TransportOptions {
  memberId: bigint;
  clusterId: bigint;
  /** Peer URLs to listen on (http://host:port; https:// needs `tls.server`). */
  listenUrls: readonly string[];
  /** Called for every Raft message received, in arrival order per peer. */
  onMessage(from: bigint, payload: Buffer): void;
  /** Called when messages to a peer were dropped or its stream broke (Raft's ReportUnreachable). */
  onPeerUnreachable?(id: bigint): void;
  /** Largest frame accepted or sent (default 64 MiB). */
  maxFrameBytes?: number;
  /** Per-peer send queue limits (defaults 4096 messages, 64 MiB). */
  queueMessagesMax?: number;
  queueBytesMax?: number;
  dialTimeoutMs?: number;
  pingIntervalMs?: number;
  /** A stream with no traffic (not even a pong) for this long is closed and redialed (default 5 s, etcd's ConnReadTimeout). */
  idleTimeoutMs?: number;
  /** Reconnect backoff bounds. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  tls?: { server?: tls.TlsOptions; client?: tls.ConnectionOptions };
  logger?: Logger;
}

/** Counters for metrics and tests. */
export interface TransportStats {
  sentMessages: number;
  sentBytes: number;
  receivedMessages: number;
  receivedBytes: number;
  droppedMessages: number;
  dialFailures: number;
}

interface HelloFrame { cluster_id: string; from: string; to: string }

function hex(id: bigint): string {
  return id.toString(16);
}

/** Parses `http://host:port` (or https) into a dial target. */
export function parsePeerUrl(url: string): { host: string; port: number; secure: boolean } {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`peer URL ${url}: scheme must be http or https`);
  const port = Number(u.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`peer URL ${url}: a port is required`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port, secure: u.protocol === 'https:' };
}

/** The sending half towards one peer: a bounded queue and a stream that is redialed when it breaks. */
class PeerSender {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private socket: net.Socket | undefined;
  private connected = false;
  private writable = true;
  private flushScheduled = false;
  private backoffMs: number;
  private redialTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastHeardMs = 0;
  private urlIndex = 0;
  private stopped = false;
  /** Last measured round trip, for etcd_network_peer_round_trip_time_seconds. */
  rttMs = 0;

  constructor(
    private readonly t: Transport,
    readonly id: bigint,
    private urls: string[],
  ) {
    this.backoffMs = t.opts.backoffMinMs;
    this.dial();
  }

  setUrls(urls: string[]): void {
    this.urls = urls;
    this.urlIndex = 0;
  }

  /** Queues one Raft message; false if it was dropped (queue full or stream down). */
  send(payload: Uint8Array): boolean {
    const o = this.t.opts;
    if (!this.connected || this.queue.length >= o.queueMessagesMax || this.queuedBytes + payload.length > o.queueBytesMax) {
      this.t.stats.droppedMessages++;
      return false;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
    writeFrameHeader(frame, 0, FrameType.Raft, payload.length);
    frame.set(payload, FRAME_HEADER_BYTES);
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (!this.flushScheduled && this.writable) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  /** Writes everything queued as one buffer (one syscall per event-loop turn and peer). */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const socket = this.socket;
    if (!socket || !this.connected || this.queue.length === 0) return;
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue, this.queuedBytes);
    this.t.stats.sentMessages += this.queue.length;
    this.t.stats.sentBytes += data.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.writable = socket.write(data);
  };

  private dial(): void {
    if (this.stopped) return;
    const o = this.t.opts;
    const url = this.urls[this.urlIndex % this.urls.length];
    this.urlIndex++;
    let target: ReturnType<typeof parsePeerUrl>;
    try {
      target = parsePeerUrl(url);
    } catch (err) {
      o.logger.error('bad peer URL', { peer: hex(this.id), url, error: err });
      this.scheduleRedial();
      return;
    }
    const socket = target.secure
      ? tls.connect({ ...o.tls.client, host: target.host, port: target.port, servername: target.host })
      : net.connect({ host: target.host, port: target.port });
    this.socket = socket;
    socket.setNoDelay(true);
    const dialTimer = setTimeout(() => socket.destroy(new Error('dial timeout')), o.dialTimeoutMs);
    const reader = new FrameReader(o.maxFrameBytes);
    socket.once(target.secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(dialTimer);
      const hello: HelloFrame = { cluster_id: hex(this.t.opts.clusterId), from: hex(this.t.opts.memberId), to: hex(this.id) };
      socket.write(Buffer.concat([PEER_MAGIC, encodeFrame(FrameType.Hello, Buffer.from(JSON.stringify(hello)))]));
      this.connected = true;
      this.writable = true;
      this.backoffMs = o.backoffMinMs;
      this.lastHeardMs = Date.now();
      this.pingTimer = setInterval(this.ping, o.pingIntervalMs);
      o.logger.info('peer stream established', { peer: hex(this.id), url });
    });
    socket.on('drain', () => {
      this.writable = true;
      if (this.queue.length > 0 && !this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      this.lastHeardMs = Date.now();
      reader.push(chunk);
      try {
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.type === FrameType.Pong && f.payload.length === 8) {
            this.rttMs = Date.now() - f.payload.readDoubleBE(0);
          } else if (f.type === FrameType.Error) {
            o.logger.warn('peer refused the stream', { peer: hex(this.id), reason: f.payload.toString() });
          }
        }
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(dialTimer);
      if (!this.connected) this.t.stats.dialFailures++;
      o.logger.debug('peer stream error', { peer: hex(this.id), url, error: err });
    });
    socket.on('close', () => {
      clearTimeout(dialTimer);
      const wasConnected = this.connected;
      this.connected = false;
      this.socket = undefined;
      if (this.pingTimer) clearInterval(this.pingTimer);
      this.pingTimer = undefined;
      this.t.stats.droppedMessages += this.queue.length;
      const lost = this.queue.length > 0;
      this.queue = [];
      this.queuedBytes = 0;
      if (wasConnected) o.logger.warn('lost peer stream', { peer: hex(this.id) });
      if (wasConnected || lost) this.t.opts.onPeerUnreachable(this.id);
      this.scheduleRedial();
    });
  }

  private readonly ping = (): void => {
    const socket = this.socket;
    if (!socket || !this.connected) return;
    if (Date.now() - this.lastHeardMs > this.t.opts.idleTimeoutMs) {
      socket.destroy(new Error('peer stream idle'));
      return;
    }
    const now = Buffer.allocUnsafe(8);
    now.writeDoubleBE(Date.now(), 0);
    socket.write(encodeFrame(FrameType.Ping, now));
  };

  private scheduleRedial(): void {
    if (this.stopped || this.redialTimer) return;
    const o = this.t.opts;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(o.backoffMaxMs, this.backoffMs * 2);
    this.redialTimer = setTimeout(() => {
      this.redialTimer = undefined;
      this.dial();
    }, delayMs);
  }

  get isConnected(): boolean {
    return this.connected;
  }

  stop(): void {
    this.stopped = true;
    if (this.redialTimer) clearTimeout(this.redialTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.socket?.destroy();
  }
}

type ResolvedOptions = Required<Omit<TransportOptions, 'tls' | 'onPeerUnreachable' | 'logger'>> & {
  tls: NonNullable<TransportOptions['tls']>;
  onPeerUnreachable(id: bigint): void;
  logger: Logger;
};

/**
 * Moves opaque Raft message bytes between members.
 *
 *   const t = new Transport({ memberId, clusterId, listenUrls: ['http://127.0.0.1:2380'], onMessage });
 *   await t.listen();
 *   t.addPeer(peerId, ['http://127.0.0.1:22380']);
 *   t.send(peerId, encodedMessage);
 */
export class Transport {
  readonly opts: ResolvedOptions;
  readonly stats: TransportStats = { sentMessages: 0, sentBytes: 0, receivedMessages: 0, receivedBytes: 0, droppedMessages: 0, dialFailures: 0 };
  private readonly peers = new Map<bigint, PeerSender>();
  private readonly servers: net.Server[] = [];
  private readonly inbound = new Set<net.Socket>();

  constructor(opts: TransportOptions) {
    this.opts = {
      maxFrameBytes: 64 * 1024 * 1024,
      queueMessagesMax: 4096,
      queueBytesMax: 64 * 1024 * 1024,
      dialTimeoutMs: 1000,
      pingIntervalMs: 1000,
      idleTimeoutMs: 5000,
      backoffMinMs: 50,
      backoffMaxMs: 1000,
      ...opts,
      tls: opts.tls ?? {},
      onPeerUnreachable: opts.onPeerUnreachable ?? (() => {}),
      logger: opts.logger ?? silentLogger,
    };
  }

  /** Starts listening on every listen URL. */
  async listen(): Promise<void> {
    for (const url of this.opts.listenUrls) {
      const target = parsePeerUrl(url);
      if (target.secure && !this.opts.tls.server) throw new Error(`peer URL ${url} is https but no peer certificate is configured`);
      const server = target.secure
        ? tls.createServer(this.opts.tls.server!, (s) => this.accept(s))
        : net.createServer((s) => this.accept(s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: target.host, port: target.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
    }
  }

  /** The actual listening addresses (useful when a URL asked for port 0). */
  addresses(): net.AddressInfo[] {
    return this.servers.map((s) => s.address() as net.AddressInfo);
  }

  private accept(socket: net.Socket): void {
    this.inbound.add(socket);
    socket.setNoDelay(true);
    const o = this.opts;
    const reader = new FrameReader(o.maxFrameBytes);
    let magicSeen = false;
    let from: bigint | undefined;
    const refuse = (reason: string) => {
      o.logger.warn('refused peer stream', { remote: socket.remoteAddress, reason });
      socket.end(encodeFrame(FrameType.Error, Buffer.from(reason)));
      socket.destroySoon();
    };
    const helloTimer = setTimeout(() => socket.destroy(), o.dialTimeoutMs * 5);
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      try {
        if (!magicSeen) {
          if (reader.pendingBytes < PEER_MAGIC.length) return;
          if (!reader.take(PEER_MAGIC.length).equals(PEER_MAGIC)) {
            socket.destroy();
            return;
          }
          magicSeen = true;
        }
        for (let f = reader.next(); f; f = reader.next()) {
          if (from === undefined) {
            if (f.type !== FrameType.Hello) { refuse('expected hello'); return; }
            const hello = JSON.parse(f.payload.toString()) as Partial<HelloFrame>;
            if (hello.cluster_id !== hex(o.clusterId)) {
              refuse(`cluster ID mismatch: local ${hex(o.clusterId)}, remote ${String(hello.cluster_id)}`);
              return;
            }
            if (hello.to !== hex(o.memberId)) {
              refuse(`member ID mismatch: this is ${hex(o.memberId)}, stream is for ${String(hello.to)}`);
              return;
            }
            from = BigInt('0x' + String(hello.from));
            clearTimeout(helloTimer);
            continue;
          }
          if (f.type === FrameType.Raft) {
            this.stats.receivedMessages++;
            this.stats.receivedBytes += f.payload.length;
            o.onMessage(from, f.payload);
          } else if (f.type === FrameType.Ping) {
            socket.write(encodeFrame(FrameType.Pong, f.payload));
          }
        }
      } catch (err) {
        o.logger.warn('bad peer stream', { remote: socket.remoteAddress, error: err });
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.inbound.delete(socket);
    });
  }

  /** Starts (or re-points) the stream to a peer. */
  addPeer(id: bigint, urls: string[]): void {
    if (id === this.opts.memberId) return;
    const existing = this.peers.get(id);
    if (existing) existing.setUrls(urls);
    else this.peers.set(id, new PeerSender(this, id, urls));
  }

  removePeer(id: bigint): void {
    this.peers.get(id)?.stop();
    this.peers.delete(id);
  }

  /** Sends one message; false if it was dropped (unknown peer, stream down, queue full). */
  send(to: bigint, payload: Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (!peer) {
      this.stats.droppedMessages++;
      return false;
    }
    return peer.send(payload);
  }

  /** Whether the outgoing stream to a peer is up (etcd_network_active_peers). */
  isActive(id: bigint): boolean {
    return this.peers.get(id)?.isConnected ?? false;
  }

  rttMs(id: bigint): number {
    return this.peers.get(id)?.rttMs ?? 0;
  }

  async stop(): Promise<void> {
    for (const p of this.peers.values()) p.stop();
    this.peers.clear();
    for (const s of this.inbound) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.length = 0;
  }
}
