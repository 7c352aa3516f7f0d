// Only a forwarding name for test/cluster/restart.test.ts, which is edited elsewhere: the implementation is
// src/crc32c.ts. Delete this file once that test imports `crc32c` from there.
export { crc32c as crc32cJs } from '../crc32c.js';
