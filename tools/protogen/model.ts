// The schema as the emitter sees it: plain data extracted from protobufjs's reflection objects,
// with our type-mapping decisions (bigint, packing, recursion, splice) already made.

/** Protobuf scalar types. */
export type ScalarType =
  | 'double'
  | 'float'
  | 'int32'
  | 'uint32'
  | 'sint32'
  | 'fixed32'
  | 'sfixed32'
  | 'int64'
  | 'uint64'
  | 'sint64'
  | 'fixed64'
  | 'sfixed64'
  | 'bool'
  | 'string'
  | 'bytes';

/** A message or enum referenced by a field or a method. */
export interface TypeRef {
  /** e.g. 'etcdserverpb.RangeRequest.SortOrder' */
  fullName: string;
  /** e.g. 'RangeRequest_SortOrder' */
  tsName: string;
  /** e.g. 'etcdserverpb' */
  packageName: string;
  /** The target (out path) of the file that defines it. */
  out: string;
}

export interface FieldModel {
  name: string;
  /** lowerCamel JSON name (protoc's rule: drop '_' and upper-case the next letter). */
  jsonName: string;
  id: number;
  kind: 'scalar' | 'enum' | 'message';
  /** For kind 'scalar'. */
  scalar: ScalarType | undefined;
  /** For kind 'enum' / 'message'. */
  ref: TypeRef | undefined;
  /** A 64-bit field marked [jstype = JS_STRING]: a bigint in TypeScript. */
  big: boolean;
  repeated: boolean;
  /** Written packed (repeated numeric/enum/bool unless [packed = false]). */
  packed: boolean;
  /** The oneof this field belongs to, if any. */
  oneof: string | undefined;
  /** A message field whose type can contain the enclosing message again (bounded by nestingDepthMax). */
  recursive: boolean;
  /** Also accept pre-encoded submessages as `<name>_encoded`. */
  splice: boolean;
  comment: string | undefined;
}

export interface OneofModel {
  name: string;
  /** Member field names, in declaration order. */
  fields: string[];
}

export interface MessageModel {
  fullName: string;
  tsName: string;
  /** In declaration order (the JSON order); the wire order is by field number. */
  fields: FieldModel[];
  oneofs: OneofModel[];
  /** Some field can reach this message again. */
  recursive: boolean;
  comment: string | undefined;
}

export interface EnumValueModel {
  name: string;
  number: number;
  comment: string | undefined;
}

export interface EnumModel {
  fullName: string;
  tsName: string;
  values: EnumValueModel[];
  comment: string | undefined;
}

export interface MethodModel {
  name: string;
  request: TypeRef;
  response: TypeRef;
  requestStream: boolean;
  responseStream: boolean;
  /** POST paths of the google.api.http option, primary first. */
  httpPaths: string[];
  comment: string | undefined;
}

export interface ServiceModel {
  fullName: string;
  name: string;
  methods: MethodModel[];
  comment: string | undefined;
}

/** One element of a file, in declaration order. */
export type Decl =
  | { kind: 'message'; message: MessageModel }
  | { kind: 'enum'; enum: EnumModel }
  | { kind: 'service'; service: ServiceModel };

export interface FileModel {
  /** Relative to the repository root, e.g. 'src/proto/rpc.proto'. */
  proto: string;
  /** Relative to the repository root, e.g. 'src/proto/rpc.ts'. */
  out: string;
  packageName: string;
  decls: Decl[];
}
