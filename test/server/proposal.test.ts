import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeProposal } from '../../src/server/proposal.js';
import { encodeInternalRequest, decodeInternalRequest } from '../../src/proto/internal.js';

const ids = [1n, 0x7fn, 0x80n, 0x1234_5678_9abcn, 0xffff_ffff_ffff_ffffn, 0x8e9e_05c5_2164_694dn];
const requests = [
  { put: { key: Buffer.from('k'), value: Buffer.alloc(300, 1), lease: 0x7fff_ffff_ffff_ffffn, prev_kv: true } },
  { put: {} },
  { delete_range: { key: Buffer.from('a'), range_end: Buffer.from('b'), prev_kv: true } },
  {
    txn: {
      compare: [{ key: Buffer.from('x'), result: 1, target: 3, mod_revision: 5 }],
      success: [{ request_put: { key: Buffer.from('x'), value: Buffer.from('y') } }],
      failure: [],
    },
  },
  { compaction: { revision: 7, physical: true } },
  { member_attr_set: { member_ID: 5n, attributes: { name: 'n', client_urls: ['http://a:1'] } } },
  // With the caller (auth on).
  { put: { key: Buffer.from('k'), value: Buffer.from('v') }, header: { username: 'alice', auth_revision: 12 } },
  { delete_range: { key: Buffer.from('a') }, header: { username: 'root', auth_revision: Number.MAX_SAFE_INTEGER } },
  { txn: { compare: [], success: [], failure: [] }, header: { username: '', auth_revision: 0 } },
];

test('the direct envelope encoding is byte for byte the generated one', () => {
  for (const id of ids) {
    for (const r of requests) {
      const fast = encodeProposal(id, r);
      const slow = encodeInternalRequest({ ...r, ID: id });
      assert.ok(Buffer.from(fast).equals(Buffer.from(slow)), `id ${id.toString(16)} ${Object.keys(r)[0]}`);
      assert.is(decodeInternalRequest(fast).ID, id);
    }
  }
});

test.run();
