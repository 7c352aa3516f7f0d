// What tools/protogen generates: which .proto files, where the TypeScript goes, and the
// non-proto "splice" fields that let the server write pre-encoded messages.

/** One generated module. Paths are relative to the repository root. */
export interface Target {
  proto: string;
  out: string;
}

/** Every .proto we generate code for, in dependency order. */
export const targets: readonly Target[] = [
  { proto: 'src/proto/kv.proto', out: 'src/proto/kv.ts' },
  { proto: 'src/proto/auth.proto', out: 'src/proto/auth.ts' },
  { proto: 'src/proto/rpc.proto', out: 'src/proto/rpc.ts' },
  { proto: 'src/proto/v3lock.proto', out: 'src/proto/v3lock.ts' },
  { proto: 'src/proto/v3election.proto', out: 'src/proto/v3election.ts' },
  { proto: 'src/proto/internal.proto', out: 'src/proto/internal.ts' },
  // Exercises every scalar type, packing, oneofs, recursion and nesting; used by test/proto only.
  { proto: 'test/proto/fixtures/alltypes.proto', out: 'test/proto/gen/alltypes.ts' },
];

/** Directories `import "x.proto"` resolves against (google/protobuf/* comes from protobufjs). */
export const includeDirs: readonly string[] = ['src/proto', 'test/proto/fixtures'];

/** The module every generated file imports the wire primitives from (JSON helpers and service types sit beside it). */
export const runtimeDir = 'src/proto';

/**
 * Repeated message fields that also get an `<field>_encoded?: Uint8Array[]` member in the
 * message's Init type: already-encoded submessages written verbatim instead of `<field>`.
 * Key: full message name; value: field names.
 */
export const spliceFields: Readonly<Record<string, readonly string[]>> = {
  'etcdserverpb.RangeResponse': ['kvs'],
  'etcdserverpb.WatchResponse': ['events'],
  'tetcdtest.Repeated': ['r_msg'],
};
