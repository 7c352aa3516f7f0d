// Piscina worker of the password pool: bcrypt hashing and comparing, which take tens of milliseconds of
// CPU each at etcd's default cost and so never run on the member's event loop. The addon's libcrypt bcrypt
// (native/bcrypt.cc) when the addon has it: as fast as etcd's Go bcrypt, ~1.6x faster than bcryptjs, which
// stays the fallback for an addon built before it. Both read and write $2a$/$2b$ hashes alike.
import bcrypt from 'bcryptjs';
import { loadAddon } from '../native/addon.js';

/** One task: hash `password` at `cost`, or compare it with `hash`. */
export interface HashTask {
  op: 'hash' | 'compare';
  password: string;
  cost?: number;
  hash?: string;
}

/** The addon's exports this module uses (native/bcrypt.cc). */
interface BcryptAddon {
  bcryptHash?(password: string, cost: number): string;
  bcryptCompare?(password: string, hash: string): boolean;
}

/** Which bcrypt runs the tasks: 'libcrypt' (the addon) or 'bcryptjs'. */
export function bcryptImpl(): 'libcrypt' | 'bcryptjs' {
  return native() !== undefined ? 'libcrypt' : 'bcryptjs';
}

let addon: Required<BcryptAddon> | null | undefined;

function native(): Required<BcryptAddon> | undefined {
  if (addon === undefined) {
    try {
      const a = loadAddon<BcryptAddon>();
      addon = typeof a.bcryptHash === 'function' && typeof a.bcryptCompare === 'function' ? (a as Required<BcryptAddon>) : null;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}

/** Piscina's entry point: the hash (op 'hash'), or whether the password matches (op 'compare'). */
export default function run(t: HashTask): string | boolean {
  const n = native();
  if (t.op === 'hash') return n ? n.bcryptHash(t.password, t.cost ?? 10) : bcrypt.hashSync(t.password, t.cost ?? 10);
  return n ? n.bcryptCompare(t.password, t.hash ?? '') : bcrypt.compareSync(t.password, t.hash ?? '');
}
