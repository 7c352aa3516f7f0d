// The bench scripts' flag reader: each kind of value, and etcd-bench-style errors for bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFlags } from '../../bench/lib/flags.js';

const spec = {
  '--rounds': ['rounds', 'number'],
  '--workloads': ['workloads', 'list'],
  '--tetcd-cmd': ['cmd', 'command'],
  '--out': ['out', 'string'],
} as const;
const defaults = () => ({ rounds: 3, workloads: ['a'], cmd: ['bin/tetcd'], out: '' });

test('flags set their options; the rest keep their defaults', () => {
  const o = readFlags(['--rounds', '5', '--workloads', 'x,y', '--tetcd-cmd', 'node dist/x.js --a'], defaults(), spec);
  assert.equal(o, { rounds: 5, workloads: ['x', 'y'], cmd: ['node', 'dist/x.js', '--a'], out: '' });
});

test('an unknown flag, a non-positive or missing number are refused', () => {
  assert.throws(() => readFlags(['--nope', '1'], defaults(), spec), /unknown option --nope/);
  assert.throws(() => readFlags(['--rounds', '0'], defaults(), spec), /--rounds needs a positive number/);
  assert.throws(() => readFlags(['--rounds'], defaults(), spec), /--rounds needs a positive number/);
});

test.run();
