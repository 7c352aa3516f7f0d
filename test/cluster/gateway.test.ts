// The JSON gateway on every member of a 3-member cluster: writes through a follower's gateway commit, a
// linearizable range through another follower's sees them, a watch on a third member streams them as they
// happen, and a lease granted on one follower is kept alive through another's keep-alive stream.
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, type Member } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function post(m: Member, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.clientPort, path, method: 'POST', agent: false }, (res) => {
      let t = '';
      res.on('data', (c: Buffer) => (t += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(t) as Record<string, unknown> }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${path}: no answer`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Opens a streaming request and collects its JSON lines. */
function stream(m: Member, path: string, body: unknown): { lines: Record<string, unknown>[]; close: () => void } {
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  const req = http.request({ host: '127.0.0.1', port: m.clientPort, path, method: 'POST', agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buf += c;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
  });
  req.on('error', () => {});
  req.end(JSON.stringify(body));
  return { lines, close: () => req.destroy() };
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the gateway on leader and followers: writes, linearizable reads, watch and keep-alive across members', async () => {
  const members = await startCluster('tetcd', ['g1', 'g2', 'g3']);
  try {
    const st = await etcdctl(members[0]!.endpoint, ['endpoint', 'status', '-w', 'json']);
    const leaderId = /"leader":(\d+)/.exec(st.stdout)?.[1];
    const ids = await Promise.all(members.map((m) => post(m, '/v3/maintenance/status', {})));
    const followers = members.filter((_, i) => (ids[i]!.json.header as Record<string, string>).member_id !== leaderId);
    assert.is(followers.length, 2, 'two followers');
    const [f1, f2] = followers as [Member, Member];
    const leader = members.find((m) => !followers.includes(m))!;

    const w = stream(leader, '/v3/watch', { create_request: { key: b64('gk'), range_end: b64('gl') } });
    await until(() => w.lines.length === 1, 'the watch to be created');
    for (let i = 0; i < 5; i++) {
      const put = await post(f1, '/v3/kv/put', { key: b64(`gk${i}`), value: b64(`v${i}`) });
      assert.is(put.status, 200);
      const got = await post(f2, '/v3/kv/range', { key: b64(`gk${i}`) });
      assert.is(got.status, 200);
      assert.equal((got.json.kvs as { value: string }[])[0]!.value, b64(`v${i}`), 'a linearizable read on another follower sees the write');
    }
    await until(() => w.lines.length === 6, 'five watch events');
    const keys = w.lines
      .slice(1)
      .map((l) => Buffer.from((l.result as { events: { kv: { key: string } }[] }).events[0]!.kv.key, 'base64').toString());
    assert.equal(keys, ['gk0', 'gk1', 'gk2', 'gk3', 'gk4']);
    w.close();

    const grant = await post(f1, '/v3/lease/grant', { TTL: '30' });
    assert.is(grant.status, 200);
    const id = grant.json.ID as string;
    const ka = stream(f2, '/v3/lease/keepalive', { ID: id });
    await until(() => ka.lines.length === 1, 'the keep-alive answer');
    assert.equal((ka.lines[0]!.result as { ID: string; TTL: string }).ID, id);
    assert.is((ka.lines[0]!.result as { TTL: string }).TTL, '30');
    ka.close();
    const revoke = await post(f2, '/v3/lease/revoke', { ID: id });
    assert.is(revoke.status, 200);
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test.run();
