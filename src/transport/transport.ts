// Peer traffic between member processes: one outgoing TCP (or TLS) stream per peer carrying framed Raft
// messages, and a listener accepting the streams of the others. Queues are bounded per peer; a slow or
// dead peer loses messages (Raft retransmits) and never blocks the others or grows memory.
import { HistogramCounts, PEER_RTT_SECONDS_BUCKETS } from '../metrics.js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { FrameReader, FrameType, PEER_MAGIC, encodeFrame, writeFrameHeader, FRAME_HEADER_BYTES } from './frame.js';
import { type Logger, silentLogger } from '../log.js';

export interface TransportOptions {
  memberId: bigint;
  clusterId: bigint;
  /** Peer URLs to listen on (http://host:port; https:// needs `tls.server`). */
  listenUrls: readonly string[];
  /** Called for every Raft message received, in arrival order per peer. */
  onMessage(from: bigint, payload: Buffer): void;
  /** Called for every lease frame received (a forwarded keep-alive or time-to-live, or an answer to one). */
  onLease?(from: bigint, payload: Buffer): void;
  /** Called for every hash frame received (a corruption check's HashKV request, or an answer to one). */
  onHash?(from: bigint, payload: Buffer): void;
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
  tls?: PeerTls;
  logger?: Logger;
  /** Where received snapshot state files are written (required to receive snapshots). */
  snapshotDir?: string;
  /** Largest snapshot state file accepted (default 16 GiB). */
  snapshotBytesMax?: number;
  /**
   * A snapshot arrived whole and verified: the Raft MsgSnap and the path of its state file. The receiver
   * owns the file from here on.
   */
  onSnapshot?(from: bigint, message: Buffer, statePath: string): void;
  /**
   * Whether this member started from an empty data dir and has not yet published itself to the cluster; its
   * streams say so, and a peer that knows the member as already bootstrapped refuses them (etcd 3.4 asks its
   * peers the same before it starts: "member … has already been bootstrapped").
   */
  isFresh?(): boolean;
  /** Whether member `id` has run before (published itself): a fresh stream from it is refused. */
  isBootstrapped?(id: bigint): boolean;
  /** A peer refused this member's stream, with its reason. */
  onRefused?(peer: bigint, reason: string): void;
  /** Called for every membership frame received (src/server/member_forward.ts). */
  onMember?(from: bigint, payload: Buffer): void;
  /** The cluster's ID and members as JSON, for a joining member's MembersQuery (undefined: not answered). */
  membersInfo?(): Buffer | undefined;
  /** Whether member `id` was removed from the cluster: its streams are refused with etcd's text. */
  isRemoved?(id: bigint): boolean;
}

/** What a MembersQuery is answered with. */
export interface ClusterMembersInfo {
  cluster_id: string;
  members: Array<{ id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }>;
}

/** What a refused removed member is told (etcd's peer handlers answer 410 Gone with it). */
export const REMOVED_MEMBER_TEXT = 'the member has been permanently removed from the cluster';

/** One peer as /metrics shows it (etcd_network_peer_*{To|From}). */
export interface PeerObservation {
  id: bigint;
  active: boolean;
  sentBytes: number;
  sentFailures: number;
  receivedBytes: number;
  rttSeconds: HistogramCounts;
}

/** Counters for metrics and tests. */
export interface TransportStats {
  sentMessages: number;
  sentBytes: number;
  receivedMessages: number;
  receivedBytes: number;
  droppedMessages: number;
  dialFailures: number;
  snapshotsSent: number;
}

interface HelloFrame {
  cluster_id: string;
  from: string;
  to: string;
  /** The dialer started from an empty data dir and has not published itself yet (TransportOptions.isFresh). */
  fresh?: boolean;
}

function hex(id: bigint): string {
  return id.toString(16);
}

/** Parses `http://host:port` (or https) into a dial target. */
function parsePeerUrl(url: string): { host: string; port: number; secure: boolean } {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`peer URL ${url}: scheme must be http or https`);
  const port = Number(u.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`peer URL ${url}: a port is required`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port, secure: u.protocol === 'https:' };
}

/** Writes data and waits until the socket can take more (backpressure for large streams). */
function writeAll(socket: net.Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new Error('socket closed'));
      return;
    }
    if (socket.write(data)) {
      resolve();
      return;
    }
    const onDrain = () => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      socket.off('drain', onDrain);
      reject(new Error('socket closed'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/** Writes one incoming snapshot's state file, checking its size and hash. */
class SnapshotReceiver {
  readonly message: Buffer;
  private readonly expectedBytes: number;
  private readonly path: string;
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private failed: Error | undefined;
  private writes: Promise<void> = Promise.resolve();

  constructor(dir: string, begin: Buffer, bytesMax: number) {
    if (begin.length < 12) throw new Error('short snapshot header');
    const msgLen = begin.readUInt32BE(0);
    if (4 + msgLen + 8 !== begin.length) throw new Error('malformed snapshot header');
    this.message = Buffer.from(begin.subarray(4, 4 + msgLen));
    const size = begin.readBigUInt64BE(4 + msgLen);
    if (size > BigInt(bytesMax)) throw new Error(`snapshot of ${size} bytes exceeds the limit of ${bytesMax}`);
    this.expectedBytes = Number(size);
    fs.mkdirSync(dir, { recursive: true });
    this.path = path.join(dir, `incoming-${randomBytes(6).toString('hex')}.snap.db`);
    this.fd = fs.openSync(this.path, 'w', 0o600);
  }

  write(chunk: Buffer): void {
    if (this.failed) return;
    if (this.bytes + chunk.length > this.expectedBytes) {
      this.failed = new Error('snapshot longer than announced');
      return;
    }
    const at = this.bytes;
    this.bytes += chunk.length;
    this.hash.update(chunk);
    const copy = Buffer.from(chunk);
    this.writes = this.writes.then(
      () =>
        new Promise<void>((resolve, reject) => {
          fs.write(this.fd, copy, 0, copy.length, at, (err) => (err ? reject(err) : resolve()));
        }),
    );
    this.writes.catch((err: Error) => {
      this.failed = err;
    });
  }

  /** Verifies and syncs the file; resolves with its path. */
  async finish(expectedHash: Buffer): Promise<string> {
    try {
      await this.writes;
      if (this.failed) throw this.failed;
      if (this.bytes !== this.expectedBytes) throw new Error(`snapshot has ${this.bytes} bytes, ${this.expectedBytes} announced`);
      if (!this.hash.digest().equals(expectedHash)) throw new Error('snapshot hash mismatch');
      await new Promise<void>((resolve, reject) => fs.fsync(this.fd, (err) => (err ? reject(err) : resolve())));
      fs.closeSync(this.fd);
      return this.path;
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(this.path, { force: true });
  }
}

/** The sending half towards one peer: a bounded queue and a stream that is redialed when it breaks. */
class PeerSender {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private socket: net.Socket | undefined;
  private connected = false;
  /** When the stream came up (Date.now()), for etcd's "connected since" health checks. */
  connectedAtMs = 0;
  private writable = true;
  private flushScheduled = false;
  private backoffMs: number;
  private redialTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastHeardMs = 0;
  private urlIndex = 0;
  private stopped = false;
  /** Last measured round trip. */
  rttMs = 0;
  /** etcd_network_peer_round_trip_time_seconds{To}: one sample per ping answered. */
  readonly rttSeconds = new HistogramCounts(PEER_RTT_SECONDS_BUCKETS);
  /** etcd_network_peer_sent_bytes_total{To} */
  sentBytes = 0;
  /** etcd_network_peer_sent_failures_total{To}: messages dropped (queue full, stream down). */
  sentFailures = 0;

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

  /** Queues one frame of `type` (a Raft message by default); false if it was dropped (queue full or stream down). */
  send(payload: Uint8Array, type: number = FrameType.Raft): boolean {
    const o = this.t.opts;
    if (!this.connected || this.queue.length >= o.queueMessagesMax || this.queuedBytes + payload.length > o.queueBytesMax) {
      this.t.stats.droppedMessages++;
      this.sentFailures++;
      return false;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
    writeFrameHeader(frame, 0, type, payload.length);
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
    this.sentBytes += data.length;
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
    const socket = target.secure ? dialTls(o.tls.client, target.host, target.port) : net.connect({ host: target.host, port: target.port });
    this.socket = socket;
    socket.setNoDelay(true);
    const dialTimer = setTimeout(() => socket.destroy(new Error('dial timeout')), o.dialTimeoutMs);
    const reader = new FrameReader(o.maxFrameBytes);
    socket.once(target.secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(dialTimer);
      const hello: HelloFrame = { cluster_id: hex(this.t.opts.clusterId), from: hex(this.t.opts.memberId), to: hex(this.id) };
      if (o.isFresh()) hello.fresh = true;
      socket.write(Buffer.concat([PEER_MAGIC, encodeFrame(FrameType.Hello, Buffer.from(JSON.stringify(hello)))]));
      this.connected = true;
      this.connectedAtMs = Date.now();
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
            this.rttMs = performance.now() - f.payload.readDoubleBE(0);
            this.rttSeconds.observe(this.rttMs / 1000);
          } else if (f.type === FrameType.Error) {
            o.logger.warn('peer refused the stream', { peer: hex(this.id), reason: f.payload.toString() });
            // Refused after a successful connect: redial no faster than the longest backoff.
            this.backoffMs = o.backoffMaxMs;
            o.onRefused(this.id, f.payload.toString());
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
      this.sentFailures += this.queue.length;
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
    // The peer echoes it back to this process: its monotonic clock, in ms with a fraction.
    now.writeDoubleBE(performance.now(), 0);
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

  /**
   * The peer has just dialed this member, so it is up: a redial waiting out its backoff goes now (a member
   * that joins is dialed by the leader from MemberAdd on, refused until it listens, up to backoffMaxMs late).
   */
  peerIsUp(): void {
    if (this.stopped || this.connected || this.redialTimer === undefined) return;
    clearTimeout(this.redialTimer);
    this.redialTimer = undefined;
    this.backoffMs = this.t.opts.backoffMinMs;
    this.dial();
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

/** Peer TLS: the listener's options, the dialer's, and the checks OpenSSL does not make on accepted peers. */
export interface PeerTls {
  server?: tls.TlsOptions;
  client?: tls.ConnectionOptions;
  /** An accepted TLS connection is closed when this gives a reason (--peer-cert-allowed-cn/-hostname, SAN). */
  verifyClient?: (socket: tls.TLSSocket) => Promise<string | null>;
}

/** A TLS dial to a peer: SNI only for a name (RFC 6066 forbids an IP address there). */
function dialTls(client: tls.ConnectionOptions | undefined, host: string, port: number): tls.TLSSocket {
  return tls.connect({ ...client, host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}) });
}

type ResolvedOptions = Required<
  Omit<TransportOptions, 'tls' | 'onPeerUnreachable' | 'logger' | 'snapshotDir' | 'onSnapshot' | 'onLease' | 'onHash' | 'onMember'>
> & {
  onLease: ((from: bigint, payload: Buffer) => void) | undefined;
  onHash: ((from: bigint, payload: Buffer) => void) | undefined;
  onMember: ((from: bigint, payload: Buffer) => void) | undefined;
  tls: NonNullable<TransportOptions['tls']>;
  onPeerUnreachable(id: bigint): void;
  logger: Logger;
  snapshotDir: string | undefined;
  onSnapshot: ((from: bigint, message: Buffer, statePath: string) => void) | undefined;
};

/** Bytes per snapshot chunk frame. */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** A snapshot stream that makes no progress for this long is abandoned. */
const SNAPSHOT_IDLE_TIMEOUT_MS = 30_000;

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
  readonly stats: TransportStats = {
    sentMessages: 0,
    sentBytes: 0,
    receivedMessages: 0,
    receivedBytes: 0,
    droppedMessages: 0,
    dialFailures: 0,
    snapshotsSent: 0,
  };
  private readonly peers = new Map<bigint, PeerSender>();
  /** etcd_network_peer_received_bytes_total{From} */
  private readonly receivedBytesFrom = new Map<bigint, number>();
  private readonly servers: net.Server[] = [];
  private readonly inbound = new Set<net.Socket>();
  private readonly outboundSnapshots = new Set<net.Socket>();

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
      snapshotBytesMax: 16 * 1024 ** 3,
      ...opts,
      snapshotDir: opts.snapshotDir,
      onSnapshot: opts.onSnapshot,
      onLease: opts.onLease,
      onHash: opts.onHash,
      onMember: opts.onMember,
      tls: opts.tls ?? {},
      onPeerUnreachable: opts.onPeerUnreachable ?? (() => {}),
      logger: opts.logger ?? silentLogger,
      isFresh: opts.isFresh ?? (() => false),
      isBootstrapped: opts.isBootstrapped ?? (() => false),
      onRefused: opts.onRefused ?? (() => {}),
      isRemoved: opts.isRemoved ?? (() => false),
      membersInfo: opts.membersInfo ?? (() => undefined),
    };
  }

  /** Starts listening on every listen URL. */
  async listen(): Promise<void> {
    for (const url of this.opts.listenUrls) {
      const target = parsePeerUrl(url);
      if (target.secure && !this.opts.tls.server) throw new Error(`peer URL ${url} is https but no peer certificate is configured`);
      const server = target.secure
        ? tls.createServer(this.opts.tls.server!, (s) => {
            const verify = this.opts.tls.verifyClient;
            if (verify === undefined) return this.accept(s);
            s.on('error', () => {}); // until accept() takes the socket over
            void verify(s).then((reason) => {
              if (reason === null) return this.accept(s);
              this.opts.logger.warn('rejected peer connection', { remote: s.remoteAddress, reason });
              s.destroy();
            });
          })
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

  /** New peer TLS material (rotated files): accepted and dialed connections from now on use it. */
  setTls(t: PeerTls): void {
    this.opts.tls = t;
    for (const server of this.servers) if (server instanceof tls.Server && t.server !== undefined) server.setSecureContext(t.server);
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
    let snap: SnapshotReceiver | undefined;
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
            if (f.type === FrameType.MembersQuery) {
              clearTimeout(helloTimer);
              const info = o.membersInfo();
              if (info === undefined) refuse('this member cannot list the cluster now');
              else {
                socket.end(encodeFrame(FrameType.MembersAnswer, info));
                socket.destroySoon();
              }
              return;
            }
            if (f.type !== FrameType.Hello) {
              refuse('expected hello');
              return;
            }
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
            if (o.isRemoved(from)) {
              refuse(REMOVED_MEMBER_TEXT);
              return;
            }
            if (hello.fresh === true && o.isBootstrapped(from)) {
              refuse(`member ${hex(from)} has already been bootstrapped: it comes back with an empty data dir`);
              return;
            }
            clearTimeout(helloTimer);
            this.peers.get(from)?.peerIsUp();
            continue;
          }
          if (f.type === FrameType.Raft) {
            // Removed while its stream was up: it hears so (and stops) instead of being ignored for good.
            if (o.isRemoved(from)) {
              refuse(REMOVED_MEMBER_TEXT);
              return;
            }
            this.stats.receivedMessages++;
            this.stats.receivedBytes += f.payload.length;
            this.receivedBytesFrom.set(from, (this.receivedBytesFrom.get(from) ?? 0) + f.payload.length);
            o.onMessage(from, f.payload);
          } else if (f.type === FrameType.Lease) {
            o.onLease?.(from, f.payload);
          } else if (f.type === FrameType.Hash) {
            o.onHash?.(from, f.payload);
          } else if (f.type === FrameType.Member) {
            o.onMember?.(from, f.payload);
          } else if (f.type === FrameType.Ping) {
            socket.write(encodeFrame(FrameType.Pong, f.payload));
          } else if (f.type === FrameType.SnapBegin) {
            if (snap || !o.snapshotDir || !o.onSnapshot) {
              refuse('this member does not accept a snapshot now');
              return;
            }
            snap = new SnapshotReceiver(o.snapshotDir, f.payload, o.snapshotBytesMax);
            socket.setTimeout(SNAPSHOT_IDLE_TIMEOUT_MS, () => socket.destroy(new Error('snapshot stream idle')));
          } else if (f.type === FrameType.SnapChunk) {
            if (!snap) {
              refuse('snapshot chunk without a start');
              return;
            }
            snap.write(f.payload);
          } else if (f.type === FrameType.SnapEnd) {
            if (!snap) {
              refuse('snapshot end without a start');
              return;
            }
            const done = snap;
            snap = undefined;
            const peer = from;
            socket.pause();
            done.finish(f.payload).then(
              (path) => {
                socket.write(encodeFrame(FrameType.SnapAck, Buffer.from([1])));
                o.logger.info('received snapshot', { from: hex(peer), bytes: done.bytes });
                o.onSnapshot!(peer, done.message, path);
                socket.resume();
              },
              (err: Error) => {
                socket.end(encodeFrame(FrameType.SnapAck, Buffer.concat([Buffer.from([0]), Buffer.from(err.message)])));
                o.logger.warn('refused a snapshot', { from: hex(peer), error: err });
              },
            );
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
      snap?.abort();
    });
  }

  /**
   * Streams a snapshot to a peer on a connection of its own (Raft traffic keeps flowing meanwhile):
   * the MsgSnap, then the state file in chunks, then its SHA-256. Resolves when the peer has stored
   * and verified it; rejects otherwise (the caller reports the snapshot as failed to Raft).
   */
  async sendSnapshot(to: bigint, message: Uint8Array, statePath: string, urls: readonly string[]): Promise<void> {
    const o = this.opts;
    const target = parsePeerUrl(urls[0]);
    const fh = await fs.promises.open(statePath, 'r');
    try {
      const { size } = await fh.stat();
      const socket = target.secure
        ? dialTls(o.tls.client, target.host, target.port)
        : net.connect({ host: target.host, port: target.port });
      this.outboundSnapshots.add(socket);
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once(target.secure ? 'secureConnect' : 'connect', () => resolve());
          socket.once('error', reject);
        });
        const reader = new FrameReader(o.maxFrameBytes);
        const ack = new Promise<void>((resolve, reject) => {
          socket.on('data', (chunk: Buffer) => {
            reader.push(chunk);
            try {
              for (let f = reader.next(); f; f = reader.next()) {
                if (f.type === FrameType.SnapAck) {
                  if (f.payload[0] === 1) resolve();
                  else reject(new Error(`peer refused the snapshot: ${f.payload.subarray(1).toString()}`));
                } else if (f.type === FrameType.Error) {
                  reject(new Error(`peer refused the stream: ${f.payload.toString()}`));
                }
              }
            } catch (err) {
              reject(err as Error);
            }
          });
          socket.on('close', () => reject(new Error('snapshot stream closed before the peer acknowledged it')));
          socket.on('error', reject);
        });
        ack.catch(() => {});
        const hello: HelloFrame = { cluster_id: hex(o.clusterId), from: hex(o.memberId), to: hex(to) };
        const begin = Buffer.allocUnsafe(4 + message.length + 8);
        begin.writeUInt32BE(message.length, 0);
        begin.set(message, 4);
        begin.writeBigUInt64BE(BigInt(size), 4 + message.length);
        await writeAll(
          socket,
          Buffer.concat([
            PEER_MAGIC,
            encodeFrame(FrameType.Hello, Buffer.from(JSON.stringify(hello))),
            encodeFrame(FrameType.SnapBegin, begin),
          ]),
        );
        const hash = createHash('sha256');
        const buf = Buffer.allocUnsafe(SNAPSHOT_CHUNK_BYTES);
        for (let pos = 0; pos < size; ) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
          if (bytesRead === 0) throw new Error(`snapshot file ${statePath} shrank while being sent`);
          const chunk = buf.subarray(0, bytesRead);
          hash.update(chunk);
          await writeAll(socket, encodeFrame(FrameType.SnapChunk, chunk));
          pos += bytesRead;
        }
        await writeAll(socket, encodeFrame(FrameType.SnapEnd, hash.digest()));
        await ack;
        this.stats.snapshotsSent++;
      } finally {
        this.outboundSnapshots.delete(socket);
        socket.destroy();
      }
    } finally {
      await fh.close();
    }
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

  /** Sends one lease frame (src/server/lease_forward.ts) on the Raft stream; false if it was dropped. */
  sendLease(to: bigint, payload: Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (!peer) {
      this.stats.droppedMessages++;
      return false;
    }
    return peer.send(payload, FrameType.Lease);
  }

  /** Sends one hash frame (src/server/corrupt.ts) on the Raft stream; false if it was dropped. */
  sendHash(to: bigint, payload: Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (!peer) return false;
    return peer.send(payload, FrameType.Hash);
  }

  /** Sends one membership frame (src/server/member_forward.ts) on the Raft stream; false if it was dropped. */
  sendMember(to: bigint, payload: Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (!peer) {
      this.stats.droppedMessages++;
      return false;
    }
    return peer.send(payload, FrameType.Member);
  }

  /** Since when (Date.now()) the stream to a peer has been up; undefined while it is down. */
  activeSinceMs(id: bigint): number | undefined {
    const p = this.peers.get(id);
    return p?.isConnected === true ? p.connectedAtMs : undefined;
  }

  /** Whether the outgoing stream to a peer is up (etcd_network_active_peers). */
  isActive(id: bigint): boolean {
    return this.peers.get(id)?.isConnected ?? false;
  }

  rttMs(id: bigint): number {
    return this.peers.get(id)?.rttMs ?? 0;
  }

  /** Per-peer counters for /metrics. */
  peerObservations(): PeerObservation[] {
    const out: PeerObservation[] = [];
    for (const p of this.peers.values()) {
      out.push({
        id: p.id,
        active: p.isConnected,
        sentBytes: p.sentBytes,
        sentFailures: p.sentFailures,
        receivedBytes: this.receivedBytesFrom.get(p.id) ?? 0,
        rttSeconds: p.rttSeconds,
      });
    }
    return out;
  }

  async stop(): Promise<void> {
    for (const p of this.peers.values()) p.stop();
    this.peers.clear();
    for (const s of this.inbound) s.destroy();
    for (const s of this.outboundSnapshots) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.length = 0;
  }
}

/**
 * Asks the members at `urls` (tried in turn) for the cluster's ID and members: what a member started with
 * --initial-cluster-state existing learns before it starts (etcd's GetClusterFromRemotePeers).
 *
 *   const info = await fetchClusterMembers(['http://10.0.0.1:2380'], tls, 1000);
 */
export async function fetchClusterMembers(urls: readonly string[], tlsOpts: PeerTls, timeoutMs: number): Promise<ClusterMembersInfo> {
  const errors: string[] = [];
  for (const url of urls) {
    try {
      return await queryMembers(url, tlsOpts, timeoutMs);
    } catch (err) {
      errors.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw Object.assign(new Error('could not retrieve cluster information from the given URLs'), { attempts: errors });
}

function queryMembers(url: string, tlsOpts: PeerTls, timeoutMs: number): Promise<ClusterMembersInfo> {
  const target = parsePeerUrl(url);
  return new Promise((resolve, reject) => {
    const socket = target.secure
      ? dialTls(tlsOpts.client, target.host, target.port)
      : net.connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => socket.destroy(new Error('timed out')), timeoutMs);
    const reader = new FrameReader(64 * 1024 * 1024);
    const done = (err: Error | undefined, info?: ClusterMembersInfo) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(info!);
    };
    socket.once(target.secure ? 'secureConnect' : 'connect', () => {
      socket.write(Buffer.concat([PEER_MAGIC, encodeFrame(FrameType.MembersQuery, Buffer.alloc(0))]));
    });
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.type === FrameType.MembersAnswer) return done(undefined, JSON.parse(f.payload.toString()) as ClusterMembersInfo);
          if (f.type === FrameType.Error) return done(new Error(f.payload.toString()));
        }
      } catch (err) {
        done(err as Error);
      }
    });
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('closed before answering')));
  });
}
