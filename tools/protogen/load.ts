// Parses the .proto files with protobufjs (generation time only) and turns its reflection
// objects into the plain model the emitter works from.
import protobuf from 'protobufjs';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, sep } from 'node:path';
import type { Decl, EnumModel, FieldModel, FileModel, MessageModel, ScalarType, ServiceModel, TypeRef } from './model.js';
import type { Target } from './config.js';

const SCALARS: ReadonlySet<string> = new Set([
  'double',
  'float',
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
  'bool',
  'string',
  'bytes',
]);
const WIDE: ReadonlySet<string> = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/** protoc's JSON name: drop each '_' and upper-case the letter after it. */
export function jsonNameOf(protoName: string): string {
  let out = '';
  let upper = false;
  for (const ch of protoName) {
    if (ch === '_') {
      upper = true;
      continue;
    }
    out += upper ? ch.toUpperCase() : ch;
    upper = false;
  }
  return out;
}

/** 'pkg.Outer.Inner' in package 'pkg' → 'Outer_Inner'. */
function tsNameOf(fullName: string, pkg: string): string {
  const local = pkg === '' ? fullName : fullName.slice(pkg.length + 1);
  return local.split('.').join('_');
}

function stripDot(fullName: string): string {
  return fullName.startsWith('.') ? fullName.slice(1) : fullName;
}

function cleanComment(c: string | null | undefined): string | undefined {
  if (c === null || c === undefined) return undefined;
  const t = c.trim();
  return t === '' ? undefined : t;
}

/** The package a reflection object lives in: the chain of plain namespaces above it. */
function packageOf(obj: protobuf.ReflectionObject): string {
  const parts: string[] = [];
  let p = obj.parent;
  while (p !== null && !(p instanceof protobuf.Root)) {
    if (p instanceof protobuf.Type || p instanceof protobuf.Service || p instanceof protobuf.Enum) parts.length = 0;
    else parts.unshift(p.name);
    p = p.parent;
  }
  return parts.join('.');
}

/**
 * protobufjs's reflection of the given .proto files (paths relative to repoRoot), with field names
 * kept as written (keepCase) and imports resolved against the proto's own directory, then
 * includeDirs; google/protobuf/* comes from protobufjs. Tests use it as the reference codec.
 */
export function loadProtobufRoot(repoRoot: string, protos: readonly string[], includeDirs: readonly string[]): protobuf.Root {
  const protobufDir = dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (origin: string, target: string): string => {
    if (isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) return join(protobufDir, target);
    const candidates = [dirname(origin), ...includeDirs.map((d) => join(repoRoot, d))];
    for (const dir of candidates) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    throw new Error(`protogen: cannot find import "${target}" (from ${origin})`);
  };
  root.loadSync(
    protos.map((p) => join(repoRoot, p)),
    { keepCase: true, alternateCommentMode: true },
  );
  root.resolveAll();
  return root;
}

/** Loads every target's .proto (and what they import) and returns one FileModel per target. */
export function loadSchema(
  repoRoot: string,
  targets: readonly Target[],
  includeDirs: readonly string[],
  splice: Readonly<Record<string, readonly string[]>>,
): FileModel[] {
  const absByTarget = new Map<string, Target>();
  for (const t of targets) absByTarget.set(join(repoRoot, t.proto), t);
  const root = loadProtobufRoot(
    repoRoot,
    targets.map((t) => t.proto),
    includeDirs,
  );

  // Pass 1: collect every message/enum/service of the target files, in declaration order.
  const refs = new Map<string, TypeRef>();
  const perFile = new Map<string, protobuf.ReflectionObject[]>();
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      const target = obj.filename === null ? undefined : absByTarget.get(obj.filename);
      if (obj instanceof protobuf.Type || obj instanceof protobuf.Enum || obj instanceof protobuf.Service) {
        if (target !== undefined) {
          const fullName = stripDot(obj.fullName);
          if (!(obj instanceof protobuf.Service))
            refs.set(fullName, { fullName, tsName: tsNameOf(fullName, packageOf(obj)), packageName: packageOf(obj), out: target.out });
          let list = perFile.get(target.out);
          if (list === undefined) perFile.set(target.out, (list = []));
          // Nested types come before their parent, so a reader meets enums before their use.
          if (obj instanceof protobuf.Type) walk(obj);
          list.push(obj);
          continue;
        }
      }
      if (obj instanceof protobuf.Namespace && !(obj instanceof protobuf.Type)) walk(obj);
    }
  };
  walk(root);

  const refOf = (t: protobuf.Type | protobuf.Enum, from: string): TypeRef => {
    const r = refs.get(stripDot(t.fullName));
    if (r === undefined) throw new Error(`protogen: ${from} refers to ${t.fullName}, which is in no generated file`);
    return r;
  };

  // Pass 2: messages (recursion is decided after all are known).
  const messages = new Map<string, MessageModel>();
  const edges = new Map<string, Set<string>>();
  const files: FileModel[] = [];
  for (const t of targets) {
    const decls: Decl[] = [];
    let packageName = '';
    for (const obj of perFile.get(t.out) ?? []) {
      packageName = packageOf(obj);
      if (obj instanceof protobuf.Type) {
        const m = messageModel(obj, refOf, splice);
        messages.set(m.fullName, m);
        const out = new Set<string>();
        for (const f of m.fields) if (f.kind === 'message' && f.ref !== undefined) out.add(f.ref.fullName);
        edges.set(m.fullName, out);
        decls.push({ kind: 'message', message: m });
      } else if (obj instanceof protobuf.Enum) {
        decls.push({ kind: 'enum', enum: enumModel(obj, refOf) });
      } else if (obj instanceof protobuf.Service) {
        decls.push({ kind: 'service', service: serviceModel(obj, refOf) });
      }
    }
    if (decls.length === 0) throw new Error(`protogen: ${t.proto} defines nothing`);
    files.push({ proto: t.proto.split(sep).join('/'), out: t.out, packageName, decls });
  }

  // A field is recursive when its message type can reach the message that holds it.
  const reaches = (from: string, to: string): boolean => {
    const seen = new Set<string>();
    const stack = [from];
    while (stack.length > 0) {
      const cur = stack.pop() as string;
      if (cur === to) return true;
      if (seen.has(cur)) continue;
      seen.add(cur);
      for (const n of edges.get(cur) ?? []) stack.push(n);
    }
    return false;
  };
  for (const m of messages.values()) {
    for (const f of m.fields) {
      if (f.kind === 'message' && f.ref !== undefined && reaches(f.ref.fullName, m.fullName)) {
        f.recursive = true;
        m.recursive = true;
      }
    }
  }
  checkSplice(splice, messages);
  return files;
}

function checkSplice(splice: Readonly<Record<string, readonly string[]>>, messages: Map<string, MessageModel>): void {
  for (const [msg, fields] of Object.entries(splice)) {
    const m = messages.get(msg);
    // The table may name messages of files not generated in this run (e.g. test fixtures).
    if (m === undefined) continue;
    for (const name of fields) {
      const f = m.fields.find((x) => x.name === name);
      if (f === undefined || f.kind !== 'message' || !f.repeated)
        throw new Error(`protogen: splice field ${msg}.${name} must be a repeated message field`);
    }
  }
}

function messageModel(
  t: protobuf.Type,
  refOf: (t: protobuf.Type | protobuf.Enum, from: string) => TypeRef,
  splice: Readonly<Record<string, readonly string[]>>,
): MessageModel {
  const fullName = stripDot(t.fullName);
  const spliced = splice[fullName] ?? [];
  const fields: FieldModel[] = [];
  for (const f of t.fieldsArray) {
    const where = `${fullName}.${f.name}`;
    if (f instanceof protobuf.MapField || f.map) throw new Error(`protogen: ${where}: map fields are not supported`);
    const opts = (f.options ?? {}) as Record<string, unknown>;
    if (opts.proto3_optional === true) throw new Error(`protogen: ${where}: proto3 optional is not supported`);
    if (f.id < 1 || f.id > 536870911) throw new Error(`protogen: ${where}: bad field number ${f.id}`);
    let kind: FieldModel['kind'];
    let scalar: ScalarType | undefined;
    let ref: TypeRef | undefined;
    const rt = f.resolvedType;
    if (rt === null) {
      if (!SCALARS.has(f.type)) throw new Error(`protogen: ${where}: unknown type ${f.type}`);
      kind = 'scalar';
      scalar = f.type as ScalarType;
    } else if (rt instanceof protobuf.Enum) {
      kind = 'enum';
      ref = refOf(rt, where);
    } else {
      kind = 'message';
      ref = refOf(rt, where);
    }
    const jstype = opts.jstype;
    const big = jstype === 'JS_STRING';
    if (big && (scalar === undefined || !WIDE.has(scalar))) throw new Error(`protogen: ${where}: jstype = JS_STRING on a non-64-bit field`);
    const packable = kind === 'enum' || (scalar !== undefined && scalar !== 'string' && scalar !== 'bytes');
    fields.push({
      name: f.name,
      jsonName: jsonNameOf(f.name),
      id: f.id,
      kind,
      scalar,
      ref,
      big,
      repeated: f.repeated,
      packed: f.repeated && packable && opts.packed !== false,
      oneof: f.partOf === null ? undefined : f.partOf.name,
      recursive: false,
      splice: spliced.includes(f.name),
      comment: cleanComment(f.comment),
    });
  }
  const ids = new Set<number>();
  for (const f of fields) {
    if (ids.has(f.id)) throw new Error(`protogen: ${fullName}: field number ${f.id} used twice`);
    ids.add(f.id);
  }
  const oneofs = t.oneofsArray.map((o) => ({ name: o.name, fields: o.fieldsArray.map((f) => f.name) }));
  return { fullName, tsName: refOf(t, fullName).tsName, fields, oneofs, recursive: false, comment: cleanComment(t.comment) };
}

function enumModel(e: protobuf.Enum, refOf: (t: protobuf.Type | protobuf.Enum, from: string) => TypeRef): EnumModel {
  const r = refOf(e, e.fullName);
  const values = Object.entries(e.values).map(([name, number]) => ({ name, number, comment: cleanComment(e.comments[name]) }));
  return { fullName: r.fullName, tsName: r.tsName, values, comment: cleanComment(e.comment) };
}

interface HttpRule {
  post?: string;
  additional_bindings?: HttpRule | HttpRule[];
}

function httpPathsOf(m: protobuf.Method, where: string): string[] {
  const paths: string[] = [];
  for (const opt of m.parsedOptions ?? []) {
    const rule = (opt as Record<string, unknown>)['(google.api.http)'] as HttpRule | undefined;
    if (rule === undefined) continue;
    const add = (r: HttpRule): void => {
      if (typeof r.post !== 'string') throw new Error(`protogen: ${where}: only POST gateway bindings are supported`);
      paths.push(r.post);
    };
    add(rule);
    const extra = rule.additional_bindings;
    if (extra !== undefined) for (const r of Array.isArray(extra) ? extra : [extra]) add(r);
  }
  return paths;
}

function serviceModel(s: protobuf.Service, refOf: (t: protobuf.Type | protobuf.Enum, from: string) => TypeRef): ServiceModel {
  const fullName = stripDot(s.fullName);
  const methods = s.methodsArray.map((m) => {
    const where = `${fullName}.${m.name}`;
    if (m.resolvedRequestType === null || m.resolvedResponseType === null) throw new Error(`protogen: ${where}: unresolved types`);
    return {
      name: m.name,
      request: refOf(m.resolvedRequestType, where),
      response: refOf(m.resolvedResponseType, where),
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      httpPaths: httpPathsOf(m, where),
      comment: cleanComment(m.comment),
    };
  });
  return { fullName, name: s.name, methods, comment: cleanComment(s.comment) };
}
