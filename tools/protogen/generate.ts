// The generator as a function: .proto files in, TypeScript sources out (nothing written), so the
// CLI and the freshness test run exactly the same code.
import { loadSchema } from './load.js';
import { emitFile } from './emit.js';
import { includeDirs, runtimeDir, spliceFields, targets, type Target } from './config.js';

/** One generated file: its path relative to the repository root and its full text. */
export interface GeneratedFile {
  path: string;
  content: string;
}

/** Generates every target (or the given ones) from the .proto files under `repoRoot`. */
export function generateAll(repoRoot: string, only: readonly Target[] = targets): GeneratedFile[] {
  const files = loadSchema(repoRoot, only, includeDirs, spliceFields);
  return files.map((f) => ({ path: f.out, content: emitFile(f, runtimeDir) }));
}
