// Piscina worker of the password pool: bcrypt hashing and comparing, which take tens of milliseconds of
// CPU each at etcd's default cost and so never run on the member's event loop.
import bcrypt from 'bcryptjs';

/** One task: hash `password` at `cost`, or compare it with `hash`. */
export interface HashTask {
  op: 'hash' | 'compare';
  password: string;
  cost?: number;
  hash?: string;
}

/** Piscina's entry point: the hash (op 'hash'), or whether the password matches (op 'compare'). */
export default function run(t: HashTask): string | boolean {
  if (t.op === 'hash') return bcrypt.hashSync(t.password, t.cost ?? 10);
  return bcrypt.compareSync(t.password, t.hash ?? '');
}
