// Locating the repository from compiled code, which may run from dist/ or from .build/<name>/out/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of `fromUrl` holding tetcd's package.json. */
export function findRepoRoot(fromUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tetcd') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`protogen: no tetcd package.json above ${fromUrl}`);
    dir = parent;
  }
}
