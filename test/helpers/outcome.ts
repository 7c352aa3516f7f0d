// What a client call came to, as one comparable line: `ok <JSON>` (Buffers shown as their text) or
// `error <class>: <message>`. The etcd3-client suites compare these between etcd and tetcd.

/** JSON.stringify's replacer: a serialized Buffer prints as its text (etcd3 returns keys and values as Buffers). */
function bytesAsText(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
    return `<bytes ${Buffer.from((v as { data: number[] }).data).toString()}>`;
  }
  return v;
}

/**
 * Runs one step against a side and describes what came of it.
 *
 *   await outcome(ctx, (c) => c.client.get('k').string())   // 'ok "v"'  or  'error GRPCNotFoundError: ...'
 */
export async function outcome<C>(ctx: C, run: (c: C) => Promise<unknown>): Promise<string> {
  try {
    return 'ok ' + JSON.stringify(await run(ctx), bytesAsText);
  } catch (e) {
    const err = e as Error;
    return `error ${err.constructor.name}: ${err.message}`;
  }
}
