// Finds and loads the C++ addon (build/Release/tetcd_wal.node, built by `npm install`). The WAL
// (src/wal/native.ts) and the V8 thread scheduling (src/v8_workers.ts) each describe the part of its
// exports they use; this module only knows where it is and loads it once.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Path of the addon: $TETCD_WAL_ADDON, else build/Release/tetcd_wal.node under the directory holding package.json
 *  found by walking up from this module (so it works from dist/ and from .build/<x>/out/). */
export function nativeAddonPath(): string {
  const override = process.env.TETCD_WAL_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'build', 'Release', 'tetcd_wal.node');
    const up = dirname(dir);
    if (up === dir) throw new Error('tetcd: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let loaded: unknown;

/** Loads the addon once and returns its exports, typed by the caller as the part it uses; throws a message
 *  telling how to build it when it is missing. */
export function loadAddon<T>(): T {
  if (loaded !== undefined) return loaded as T;
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    throw new Error(
      `tetcd: the native WAL addon is not built (${path} missing): run \`npm install\` ` +
        '(or `npx node-gyp rebuild`) in the tetcd directory',
    );
  }
  loaded = createRequire(import.meta.url)(path);
  return loaded as T;
}
