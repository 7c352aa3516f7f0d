// A small reader/writer for datadriven test files (the format of etcd-io/raft's testdata): a command
// line, optional input lines, "----", then the expected output up to a blank line. Output containing
// blank lines is fenced by "----\n----" on both sides.

/** One command of a test file with its expected output. */
export interface TestCase {
  /** 1-based line of the command, for error messages. */
  line: number;
  /** Comment and blank lines before the command, kept verbatim for rewriting. */
  preamble: string[];
  cmd: string;
  args: CmdArg[];
  /** The command line as written. */
  cmdLine: string;
  input: string[];
  expected: string;
}

/** "key", "key=val" or "key=(v1,v2)". */
export interface CmdArg {
  key: string;
  vals: string[];
}

/** Parses a command line's arguments. */
export function parseArgs(parts: string[]): CmdArg[] {
  return parts.map((p) => {
    const eq = p.indexOf('=');
    if (eq < 0) return { key: p, vals: [] };
    const key = p.slice(0, eq);
    let v = p.slice(eq + 1);
    if (v.startsWith('(') && v.endsWith(')')) v = v.slice(1, -1);
    return { key, vals: v === '' ? [] : v.split(',').map((s) => s.trim()) };
  });
}

/** Parses a whole file. Throws on a malformed one. */
export function parseFile(text: string): { cases: TestCase[]; trailer: string[] } {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const cases: TestCase[] = [];
  let i = 0;
  let preamble: string[] = [];
  while (i < lines.length) {
    const l = lines[i];
    if (l.trim() === '' || l.startsWith('#')) {
      preamble.push(l);
      i++;
      continue;
    }
    const line = i + 1;
    const cmdLine = l;
    const parts = l.trim().split(/\s+/);
    i++;
    const input: string[] = [];
    while (i < lines.length && lines[i] !== '----') input.push(lines[i++]);
    if (i >= lines.length) throw new Error(`line ${line}: command without "----"`);
    i++; // ----
    const expected: string[] = [];
    if (i < lines.length && lines[i] === '----') {
      // Fenced output: until "----\n----".
      i++;
      while (i < lines.length && !(lines[i] === '----' && lines[i + 1] === '----')) expected.push(lines[i++]);
      if (i >= lines.length) throw new Error(`line ${line}: unterminated fenced output`);
      i += 2;
    } else {
      while (i < lines.length && lines[i].trim() !== '') expected.push(lines[i++]);
    }
    cases.push({ line, preamble, cmd: parts[0], args: parseArgs(parts.slice(1)), cmdLine, input, expected: expected.join('\n') });
    preamble = [];
  }
  return { cases, trailer: preamble };
}

/** Writes a file back with new outputs (rewrite mode). */
export function formatFile(cases: TestCase[], outputs: string[], trailer: string[]): string {
  let s = '';
  cases.forEach((c, idx) => {
    for (const p of c.preamble) s += p + '\n';
    s += c.cmdLine + '\n';
    for (const l of c.input) s += l + '\n';
    const out = outputs[idx].replace(/\n+$/, '');
    if (out.split('\n').some((l) => l.trim() === '')) s += `----\n----\n${out}\n----\n----\n`;
    else s += `----\n${out}\n`;
  });
  for (const p of trailer) s += p + '\n';
  return s;
}
