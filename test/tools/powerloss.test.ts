// The power-loss simulation itself (tools/powerloss): a child process changes files under the shim and
// SIGKILLs itself; the rollback must leave exactly what the fsyncs made durable (strict), a seeded subset of
// the unsynced pages (torn), and the switches that drop syncs or inject errors must do what they say.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import { rollback, shimEnv } from '../../tools/powerloss/rollback.js';
import { tempDir } from '../helpers/cleanup.js';

/** Runs `body` (ES module code; `fs`, `root` in scope) in a node child under the shim, which SIGKILLs itself. */
function runKilled(root: string, journal: string, body: string, extra: Record<string, string> = {}): string {
  const code = `import fs from 'node:fs';\nconst root = ${JSON.stringify(root)};\n${body}\nprocess.kill(process.pid, 'SIGKILL');\n`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, ...shimEnv(root, journal, extra) },
    encoding: 'utf8',
  });
  assert.is(r.signal, 'SIGKILL', `child did not die by SIGKILL: ${r.stderr}`);
  return r.stdout;
}

function fresh(): { root: string; journal: string } {
  const base = tempDir('tetcd-powerloss-unit-');
  const root = join(base, 'root');
  fs.mkdirSync(root);
  return { root, journal: join(base, 'journal') };
}

const SYNC_DIR = `const syncDir = (p) => { const fd = fs.openSync(p, 'r'); fs.fsyncSync(fd); fs.closeSync(fd); };`;

test('strict: unsynced data, sizes and directory entries are lost; synced ones stay', () => {
  const { root, journal } = fresh();
  runKilled(
    root,
    journal,
    `${SYNC_DIR}
    fs.mkdirSync(root + '/a');
    fs.writeFileSync(root + '/kept', 'hello');
    let fd = fs.openSync(root + '/kept', 'r+'); fs.fsyncSync(fd);
    fs.writeSync(fd, 'XXXXX', 0); fs.writeSync(fd, '-grown', 5); fs.closeSync(fd);
    fs.writeFileSync(root + '/old', 'old-content'); fd = fs.openSync(root + '/old', 'r'); fs.fsyncSync(fd); fs.closeSync(fd);
    fs.writeFileSync(root + '/gone', 'to-unlink'); fd = fs.openSync(root + '/gone', 'r'); fs.fsyncSync(fd); fs.closeSync(fd);
    fs.writeFileSync(root + '/trunc', 'abcdefgh'); fd = fs.openSync(root + '/trunc', 'r+'); fs.fsyncSync(fd);
    fs.closeSync(fs.openSync(root + '/dsync', 'w'));
    syncDir(root);
    fs.ftruncateSync(fd, 2); fs.closeSync(fd);
    fs.writeFileSync(root + '/a/inside', 'x');
    fs.writeFileSync(root + '/new', 'new-content'); fd = fs.openSync(root + '/new', 'r'); fs.fsyncSync(fd); fs.closeSync(fd);
    fs.renameSync(root + '/new', root + '/old');
    fs.unlinkSync(root + '/gone');
    fs.writeFileSync(root + '/late', 'late');
    fd = fs.openSync(root + '/dsync', fs.constants.O_WRONLY | fs.constants.O_DSYNC); fs.writeSync(fd, 'durable'); fs.closeSync(fd);`,
  );
  const r = rollback({ root, journal });
  const read = (p: string) => fs.readFileSync(join(root, p), 'utf8');
  assert.is(read('kept'), 'hello', 'unsynced overwrite and growth undone');
  assert.is(read('old'), 'old-content', 'a rename over a file, its directory not synced, is undone');
  assert.is(read('gone'), 'to-unlink', 'an unlink, its directory not synced, is undone');
  assert.is(read('trunc'), 'abcdefgh', 'an unsynced truncation is undone');
  assert.is(read('dsync'), 'durable', 'an O_DSYNC write is durable on completion');
  assert.ok(fs.existsSync(join(root, 'a')), 'a mkdir covered by a later fsync of its parent stays');
  assert.not.ok(fs.existsSync(join(root, 'a', 'inside')), 'a file in a directory never synced is lost');
  assert.not.ok(fs.existsSync(join(root, 'late')), 'a create never covered by a directory fsync is lost');
  assert.not.ok(fs.existsSync(join(root, 'new')), 'the rename source does not come back as well');
  assert.not.ok(fs.existsSync(join(journal, 'journal')), 'the journal is cleared');
  assert.ok(r.namespaceUndone >= 4, r.summary);
});

test('a sync covers only what was written before it; directories are covered by inode across a rename', () => {
  const { root, journal } = fresh();
  runKilled(
    root,
    journal,
    `${SYNC_DIR}
    fs.mkdirSync(root + '/d.tmp'); fs.writeFileSync(root + '/d.tmp/f', 'one');
    let fd = fs.openSync(root + '/d.tmp/f', 'r+'); fs.fsyncSync(fd); syncDir(root + '/d.tmp');
    fs.renameSync(root + '/d.tmp', root + '/d'); syncDir(root);
    fs.writeSync(fd, 'two', 3); fs.closeSync(fd);`,
  );
  rollback({ root, journal });
  assert.is(fs.readFileSync(join(root, 'd', 'f'), 'utf8'), 'one');
});

test('torn: a seeded subset of the unsynced pages survives, the same for the same seed', () => {
  const results: string[] = [];
  for (const seed of [7, 7, 8]) {
    const { root, journal } = fresh();
    runKilled(
      root,
      journal,
      `const fd = fs.openSync(root + '/f', 'w'); fs.writeSync(fd, Buffer.alloc(64 * 4096, 0x61)); fs.fsyncSync(fd);
      const d = fs.openSync(root, 'r'); fs.fsyncSync(d);
      fs.writeSync(fd, Buffer.alloc(64 * 4096, 0x62), 0, 64 * 4096, 0);`,
    );
    rollback({ root, journal, torn: true, seed });
    const b = fs.readFileSync(join(root, 'f'));
    assert.is(b.length, 64 * 4096);
    let pages = '';
    for (let p = 0; p < 64; p++) {
      const page = b.subarray(p * 4096, (p + 1) * 4096);
      assert.ok(
        page.every((x) => x === page[0]),
        `page ${p} is itself torn`,
      );
      pages += page[0] === 0x62 ? 'n' : 'o';
    }
    assert.ok(pages.includes('n') && pages.includes('o'), `seed ${seed}: all or nothing survived: ${pages}`);
    results.push(pages);
  }
  assert.is(results[0], results[1], 'the same seed tears the same pages');
  assert.is.not(results[0], results[2], 'another seed tears others');
});

test('POWERLOSS_DROP_SYNC makes an fsync do nothing; POWERLOSS_FAIL fails the n-th fdatasync and write', () => {
  const { root, journal } = fresh();
  const out = runKilled(
    root,
    journal,
    `const fd = fs.openSync(root + '/f', 'w'); const d = fs.openSync(root, 'r'); fs.fsyncSync(d);
    fs.writeSync(fd, 'lost'); fs.fdatasyncSync(fd);
    const g = fs.openSync(root + '/g', 'w'); fs.fsyncSync(d);
    const errs = [];
    for (let i = 0; i < 3; i++) { try { fs.fdatasyncSync(g); errs.push('ok'); } catch (e) { errs.push(e.code); } }
    for (let i = 0; i < 3; i++) { try { fs.writeSync(g, 'w' + i); errs.push('ok'); } catch (e) { errs.push(e.code); } }
    console.log(errs.join(','));`,
    { POWERLOSS_DROP_SYNC: '/f$', POWERLOSS_FAIL: 'fdatasync:/g:2:EIO,write:/g:3:ENOSPC' },
  );
  assert.is(out.trim(), 'ok,EIO,ok,ok,ok,ENOSPC');
  rollback({ root, journal });
  assert.is(fs.readFileSync(join(root, 'f'), 'utf8'), '', 'the dropped fdatasync made nothing durable');
  assert.is(fs.readFileSync(join(root, 'g'), 'utf8'), '', 'writes after the last good fdatasync are lost');
});

test('a failed fdatasync loses what it did not write for good: a later successful one does not bring it back', () => {
  const { root, journal } = fresh();
  runKilled(
    root,
    journal,
    `const fd = fs.openSync(root + '/f', 'w'); const d = fs.openSync(root, 'r'); fs.fsyncSync(d);
    fs.writeSync(fd, Buffer.alloc(8192, 0x61), 0, 8192, 0); fs.fdatasyncSync(fd);
    fs.writeSync(fd, Buffer.alloc(4096, 0x62), 0, 4096, 0);
    try { fs.fdatasyncSync(fd); } catch {}
    fs.writeSync(fd, Buffer.alloc(4096, 0x63), 0, 4096, 4096); fs.fdatasyncSync(fd);`,
    { POWERLOSS_FAIL: 'fdatasync:/f:2:EIO' },
  );
  rollback({ root, journal });
  const b = fs.readFileSync(join(root, 'f'));
  assert.ok(
    b.subarray(0, 4096).every((x) => x === 0x61),
    'the page the failed sync did not write is lost',
  );
  assert.ok(
    b.subarray(4096).every((x) => x === 0x63),
    'the page a later sync wrote is durable',
  );
});

test.run();
