// `tetcd`: the executable's entry. `tetcd snapshot restore|status FILE` are etcdctl's offline snapshot
// commands and load only what they need; anything else starts a member (member.ts).
async function main(): Promise<number> {
  if (process.argv[2] === 'snapshot') {
    const { snapshotCommand } = await import('../snapshot/cli.js');
    const r = await snapshotCommand(process.argv.slice(3));
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    return r.exitCode;
  }
  const { runMember } = await import('./member.js');
  return runMember(process.argv.slice(2));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A start-up failure is the user's to read: its message, and the stack only when asked for.
    const detail = err instanceof Error ? (process.env.TETCD_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`tetcd: ${detail}\n`);
    process.exit(1);
  },
);
