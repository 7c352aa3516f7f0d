// A network between tetcd members on loopback: one proxy in front of each member's peer port (the member
// advertises the proxy's URL and listens on its own), reading the peer protocol's frames so it knows which
// member dialed (the HELLO frame) and can drop, delay, duplicate and reorder whole frames per direction, or
// cut a link (close its connections and refuse new ones). Links are one-way: A→B is the traffic A sends B,
// whichever of them dialed. Bounded: a link holds at most LINK_QUEUE_BYTES_MAX of delayed frames; past that
// they are dropped, as a full router queue would.
import net from 'node:net';
import { FrameReader, FrameType, PEER_MAGIC, encodeFrame } from '../../src/transport/frame.js';
import { MessageType, decodeMessage } from '../../src/raft/index.js';

/** What happens to the frames of one link (from → to). */
export interface LinkFault {
  /** Frames vanish (the connection stays up: a black hole). */
  drop?: boolean;
  /** Connections carrying this link are closed and new ones refused (a reset, not a black hole). */
  cut?: boolean;
  /** Each frame is held this long, plus up to jitterMs. */
  delayMs?: number;
  jitterMs?: number;
  /**
   * Probability that a frame is sent twice. Never a forwarded proposal (MsgProp): no Raft deduplicates those (a
   * duplicate is applied as a second write, in etcd as here), and no TCP stream delivers a message twice, so a
   * real network cannot produce one; every other Raft message's duplicate Raft itself must tolerate.
   */
  duplicate?: number;
  /** Probability that a frame is held back behind the next one. */
  reorder?: number;
}

/** Frames of one direction waiting for their delay, at most this many bytes; more are dropped. */
export const LINK_QUEUE_BYTES_MAX = 8 * 1024 * 1024;
/** The largest frame passed on (the peer transport's own limit is 64 MiB). */
const FRAME_BYTES_MAX = 64 * 1024 * 1024;

/** One member's address on the proxied network. */
export interface ProxiedMember {
  name: string;
  /** Its ID as the HELLO frame carries it (lower-case hex). */
  idHex: string;
  /** The port the proxy listens on (the member advertises it). */
  proxyPort: number;
  /** The port the member listens on. */
  memberPort: number;
}

/** Counts per link, for tests to see that a fault did something. */
export interface LinkStats {
  passed: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  refused: number;
}

const HOST = '127.0.0.1';

/**
 * The proxies of a cluster and the faults on its links.
 *
 *   const net = await PeerNet.start(members, rng);
 *   net.isolate('m1');        // m1 hears nothing and is heard by no one
 *   net.heal();
 *   await net.close();
 */
export class PeerNet {
  private readonly faults = new Map<string, LinkFault>();
  private readonly stats = new Map<string, LinkStats>();
  private readonly servers: net.Server[] = [];
  private readonly conns = new Set<ProxiedConnection>();
  private readonly nameOfId = new Map<string, string>();

  private constructor(
    readonly members: readonly ProxiedMember[],
    readonly rng: () => number,
  ) {
    for (const m of members) this.nameOfId.set(m.idHex, m.name);
  }

  static async start(members: readonly ProxiedMember[], rng: () => number): Promise<PeerNet> {
    const pn = new PeerNet(members, rng);
    for (const m of members) {
      const server = net.createServer({ noDelay: true }, (socket) => pn.accept(socket, m));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(m.proxyPort, HOST, () => {
          server.off('error', reject);
          resolve();
        });
      });
      pn.servers.push(server);
    }
    return pn;
  }

  /** The fault on from → to (names). */
  fault(from: string, to: string): LinkFault | undefined {
    return this.faults.get(`${from}>${to}`);
  }

  /** Sets (or with undefined clears) the fault on from → to, and closes connections a cut now covers. */
  set(from: string, to: string, fault: LinkFault | undefined): void {
    if (fault === undefined) this.faults.delete(`${from}>${to}`);
    else this.faults.set(`${from}>${to}`, fault);
    for (const c of this.conns) c.recheck();
  }

  /** `fault` on every link from a member of `froms` to a member of `tos` (one way). */
  setLinks(froms: readonly string[], tos: readonly string[], fault: LinkFault | undefined): void {
    for (const f of froms) for (const t of tos) if (f !== t) this.set(f, t, fault);
  }

  /** Cuts `name` off from every other member, both ways (drop: a black hole; cut: resets). */
  isolate(name: string, how: 'drop' | 'cut' = 'drop'): void {
    const others = this.members.map((m) => m.name).filter((n) => n !== name);
    const f: LinkFault = how === 'drop' ? { drop: true } : { cut: true };
    this.setLinks([name], others, f);
    this.setLinks(others, [name], f);
  }

  /** Members in different groups cannot reach each other (both ways, black hole). */
  split(groups: readonly (readonly string[])[]): void {
    for (const a of groups) for (const b of groups) if (a !== b) this.setLinks(a, b, { drop: true });
  }

  /** Every link back to normal. */
  heal(): void {
    this.faults.clear();
    for (const c of this.conns) c.recheck();
  }

  /** Frames seen on from → to so far. */
  linkStats(from: string, to: string): LinkStats {
    const k = `${from}>${to}`;
    let s = this.stats.get(k);
    if (s === undefined) this.stats.set(k, (s = { passed: 0, dropped: 0, duplicated: 0, reordered: 0, refused: 0 }));
    return s;
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) c.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  /** @internal */
  nameOf(idHex: string): string | undefined {
    try {
      return this.nameOfId.get(BigInt(`0x${idHex}`).toString(16));
    } catch {
      return undefined;
    }
  }

  /** @internal */
  forget(c: ProxiedConnection): void {
    this.conns.delete(c);
  }

  private accept(socket: net.Socket, to: ProxiedMember): void {
    const c = new ProxiedConnection(this, socket, to);
    this.conns.add(c);
  }
}

/** Frames of one direction of one connection on their way, with the link's fault applied. */
class Direction {
  private readonly reader = new FrameReader(FRAME_BYTES_MAX);
  private queuedBytes = 0;
  /** A frame held back to be sent after the next one (reorder). */
  private held: Buffer | undefined;
  /** When the last frame was released: a later frame never leaves before an earlier one unless reordered. */
  private lastReleaseMs = 0;

  constructor(
    private readonly pn: PeerNet,
    private readonly out: net.Socket,
    /** The link's names, known once the HELLO frame is read. */
    private readonly link: () => { from: string; to: string } | undefined,
  ) {}

  push(chunk: Buffer): void {
    this.reader.push(chunk);
    for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) this.frame(encodeFrame(f.type, f.payload), duplicable(f));
  }

  private frame(bytes: Buffer, mayDuplicate: boolean): void {
    const link = this.link();
    const fault = link ? this.pn.fault(link.from, link.to) : undefined;
    const stats = link ? this.pn.linkStats(link.from, link.to) : undefined;
    if (fault?.drop || fault?.cut) {
      if (stats) stats.dropped++;
      return;
    }
    if (stats) stats.passed++;
    const rng = this.pn.rng;
    const copies = mayDuplicate && fault?.duplicate !== undefined && rng() < fault.duplicate ? 2 : 1;
    if (copies === 2 && stats) stats.duplicated++;
    if (fault?.reorder !== undefined && this.held === undefined && rng() < fault.reorder) {
      if (stats) stats.reordered++;
      this.held = bytes;
      return;
    }
    const sends = [bytes];
    if (copies === 2) sends.push(bytes);
    if (this.held !== undefined) {
      sends.push(this.held);
      this.held = undefined;
    }
    const delay = (fault?.delayMs ?? 0) + (fault?.jitterMs ? rng() * fault.jitterMs : 0);
    if (delay <= 0 && this.queuedBytes === 0) {
      for (const b of sends) this.write(b);
      return;
    }
    const size = sends.reduce((n, b) => n + b.length, 0);
    if (this.queuedBytes + size > LINK_QUEUE_BYTES_MAX) {
      if (stats) stats.dropped++;
      return;
    }
    this.queuedBytes += size;
    const at = Math.max(Date.now() + delay, this.lastReleaseMs);
    this.lastReleaseMs = at;
    setTimeout(
      () => {
        this.queuedBytes -= size;
        for (const b of sends) this.write(b);
      },
      Math.max(0, at - Date.now()),
    );
  }

  private write(b: Buffer): void {
    if (!this.out.destroyed) this.out.write(b);
  }
}

/** Whether a frame may be sent twice: a Raft message other than a proposal. */
function duplicable(f: { type: number; payload: Buffer }): boolean {
  if (f.type !== FrameType.Raft) return false;
  try {
    return decodeMessage(f.payload).type !== MessageType.MsgProp;
  } catch {
    return false;
  }
}

/** One dialed connection through a proxy: the dialer's side and the member's side. */
class ProxiedConnection {
  private readonly upstream: net.Socket;
  private from: string | undefined;
  private magicSeen = false;
  private pre = Buffer.alloc(0);
  private readonly forward: Direction;
  private readonly backward: Direction;
  private closed = false;

  constructor(
    private readonly pn: PeerNet,
    private readonly down: net.Socket,
    private readonly to: ProxiedMember,
  ) {
    this.upstream = net.connect({ host: HOST, port: to.memberPort, noDelay: true });
    this.forward = new Direction(pn, this.upstream, () => (this.from ? { from: this.from, to: to.name } : undefined));
    this.backward = new Direction(pn, down, () => (this.from ? { from: to.name, to: this.from } : undefined));
    down.on('data', (c: Buffer) => this.fromDialer(c));
    this.upstream.on('data', (c: Buffer) => {
      if (this.magicSeen) this.backward.push(c);
      else this.down.write(c); // an Error frame before the HELLO passes as is
    });
    for (const s of [down, this.upstream]) {
      s.on('error', () => this.destroy());
      s.on('close', () => this.destroy());
    }
  }

  private fromDialer(chunk: Buffer): void {
    if (this.magicSeen) {
      this.forward.push(chunk);
      return;
    }
    // The magic, then the HELLO frame, which names the dialer: both pass unchanged.
    this.pre = Buffer.concat([this.pre, chunk]);
    if (this.pre.length < PEER_MAGIC.length) return;
    if (!this.pre.subarray(0, PEER_MAGIC.length).equals(PEER_MAGIC)) {
      this.upstream.write(this.pre); // not the peer protocol: the member refuses it
      this.magicSeen = true;
      this.pre = Buffer.alloc(0);
      return;
    }
    const reader = new FrameReader(FRAME_BYTES_MAX);
    reader.push(this.pre.subarray(PEER_MAGIC.length));
    const hello = reader.next();
    if (hello === undefined) return;
    if (hello.type === FrameType.Hello) {
      try {
        const j = JSON.parse(hello.payload.toString()) as { from?: string };
        this.from = j.from !== undefined ? this.pn.nameOf(j.from) : undefined;
      } catch {
        /* the member answers a bad HELLO itself */
      }
    }
    if (this.from !== undefined && this.pn.fault(this.from, this.to.name)?.cut) {
      this.pn.linkStats(this.from, this.to.name).refused++;
      this.destroy();
      return;
    }
    this.magicSeen = true;
    const consumed = this.pre.length - reader.pendingBytes;
    this.upstream.write(this.pre.subarray(0, consumed));
    const rest = reader.pendingBytes > 0 ? reader.take(reader.pendingBytes) : undefined;
    this.pre = Buffer.alloc(0);
    if (rest !== undefined) this.forward.push(rest);
  }

  /** Closes the connection if a cut now covers either direction of it. */
  recheck(): void {
    if (this.from === undefined) return;
    if (this.pn.fault(this.from, this.to.name)?.cut || this.pn.fault(this.to.name, this.from)?.cut) this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.down.destroy();
    this.upstream.destroy();
    this.pn.forget(this);
  }
}
