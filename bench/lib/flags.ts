// The bench scripts' command lines: `--name value` pairs, each flag setting one option of the script.
//
//   const o = readFlags(argv, defaults, { '--rounds': ['rounds', 'number'], '--out': ['out', 'string'] });

/** How a flag's value reads: a positive number, a comma-separated list, a command split at spaces, or as given. */
export type FlagKind = 'number' | 'list' | 'command' | 'string';

/** Sets the options the flags name on `o` and returns it; throws on an unknown flag or a bad number. */
export function readFlags<O extends object>(
  argv: readonly string[],
  o: O,
  flags: Readonly<Record<string, readonly [keyof O, FlagKind]>>,
): O {
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    const flag = flags[k];
    if (flag === undefined) throw new Error(`unknown option ${k}`);
    const [key, kind] = flag;
    let value: unknown;
    if (kind === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${k} needs a positive number`);
      value = n;
    } else if (kind === 'list') value = v.split(',');
    else if (kind === 'command') value = v.split(' ');
    else value = v;
    (o as Record<keyof O, unknown>)[key] = value;
  }
  return o;
}
