// The MVCC store's public face: etcd's revisioned key-value store on LMDB. See store.ts.
export { Mvcc, MvccWriteTxn } from './store.js';
export type { MvccOptions, MvccEvent, MvccLeaseHooks, HashKVResult, MvccStats } from './store.js';
export type { CommitResult, DefragResult } from './backend.js';
export { backendCommitSeconds } from './backend.js';
export { SortOrder, SortTarget, endKind, EndKind } from './range.js';
export type { RangeOptions, RangeResult } from './range.js';
