// Turns one FileModel into TypeScript source: per message an interface, an Init interface and
// size/write/encode/read/decode/toJson/fromJson functions; per enum a value map and a name map;
// per service a descriptor. The output is static code (no reflection at run time) in the style of
// the hand-written template that src/proto/kv.ts used to be.
import { posix } from 'node:path';
import type { EnumModel, FieldModel, FileModel, MessageModel, ScalarType, ServiceModel, TypeRef } from './model.js';

/** How one scalar type is sized, written, read and mapped to JSON. `v` is the value expression. */
interface ScalarCodec {
  ts: string;
  zero: string;
  wireType: number;
  /** Bytes of the encoded value (without tag); a number for fixed-width types. */
  size: (v: string) => string;
  fixedSize: number | undefined;
  write: (v: string) => string;
  read: string;
  /** Test for "not the default value" on an Init field (which may be undefined). */
  present: (v: string) => string;
  toJson: (v: string) => string;
  fromJson: (x: string, label: string) => string;
}

const truthy = (v: string): string => v;

function scalarCodec(s: ScalarType, big: boolean): ScalarCodec {
  const num = (o: Partial<ScalarCodec> & Pick<ScalarCodec, 'wireType' | 'size' | 'write' | 'read' | 'fromJson'>): ScalarCodec => ({
    ts: 'number',
    zero: '0',
    fixedSize: undefined,
    present: truthy,
    toJson: (v) => v,
    ...o,
  });
  const bigc = (
    o: Pick<ScalarCodec, 'wireType' | 'size' | 'write' | 'read' | 'toJson' | 'fromJson'> & { fixedSize?: number },
  ): ScalarCodec => ({
    ts: 'bigint',
    zero: '0n',
    present: truthy,
    fixedSize: undefined,
    ...o,
  });
  const str = (v: string): string => `String(${v})`;
  switch (s) {
    case 'double':
      return num({
        wireType: 1,
        size: () => '8',
        fixedSize: 8,
        write: (v) => `w.double(${v})`,
        read: 'r.double()',
        present: (v) => `${v} !== undefined && ${v} !== 0`,
        toJson: (v) => `floatToJson(${v})`,
        fromJson: (x, l) => `floatFromJson(${x}, ${l})`,
      });
    case 'float':
      return num({
        wireType: 5,
        size: () => '4',
        fixedSize: 4,
        write: (v) => `w.float(${v})`,
        read: 'r.float()',
        present: (v) => `${v} !== undefined && ${v} !== 0`,
        toJson: (v) => `floatToJson(${v})`,
        fromJson: (x, l) => `floatFromJson(${x}, ${l})`,
      });
    case 'int32':
      return num({
        wireType: 0,
        size: (v) => `sizeInt32(${v})`,
        write: (v) => `w.int32(${v})`,
        read: 'r.int32()',
        fromJson: (x, l) => `int32FromJson(${x}, ${l})`,
      });
    case 'uint32':
      return num({
        wireType: 0,
        size: (v) => `sizeVarint32(${v})`,
        write: (v) => `w.uint32(${v})`,
        read: 'r.uint32()',
        fromJson: (x, l) => `uint32FromJson(${x}, ${l})`,
      });
    case 'sint32':
      return num({
        wireType: 0,
        size: (v) => `sizeSint32(${v})`,
        write: (v) => `w.sint32(${v})`,
        read: 'r.sint32()',
        fromJson: (x, l) => `int32FromJson(${x}, ${l})`,
      });
    case 'fixed32':
      return num({
        wireType: 5,
        size: () => '4',
        fixedSize: 4,
        write: (v) => `w.fixed32(${v})`,
        read: 'r.fixed32()',
        fromJson: (x, l) => `uint32FromJson(${x}, ${l})`,
      });
    case 'sfixed32':
      return num({
        wireType: 5,
        size: () => '4',
        fixedSize: 4,
        write: (v) => `w.fixed32(${v})`,
        read: 'r.sfixed32()',
        fromJson: (x, l) => `int32FromJson(${x}, ${l})`,
      });
    case 'int64':
      return big
        ? bigc({
            wireType: 0,
            size: (v) => `sizeVarintBig(${v})`,
            write: (v) => `w.int64Big(${v})`,
            read: 'r.int64Big()',
            toJson: (v) => `int64BigToJson(${v})`,
            fromJson: (x, l) => `int64BigFromJson(${x}, ${l})`,
          })
        : num({
            wireType: 0,
            size: (v) => `sizeVarint64(${v})`,
            write: (v) => `w.int64(${v})`,
            read: 'r.int64()',
            toJson: str,
            fromJson: (x, l) => `int64FromJson(${x}, ${l})`,
          });
    case 'uint64':
      return big
        ? bigc({
            wireType: 0,
            size: (v) => `sizeVarintBig(${v})`,
            write: (v) => `w.int64Big(${v})`,
            read: 'r.uint64Big()',
            toJson: (v) => `uint64BigToJson(${v})`,
            fromJson: (x, l) => `uint64BigFromJson(${x}, ${l})`,
          })
        : num({
            wireType: 0,
            size: (v) => `sizeVarint64(${v})`,
            write: (v) => `w.int64(${v})`,
            read: 'r.uint64()',
            toJson: str,
            fromJson: (x, l) => `uint64FromJson(${x}, ${l})`,
          });
    case 'sint64':
      return big
        ? bigc({
            wireType: 0,
            size: (v) => `sizeSint64Big(${v})`,
            write: (v) => `w.sint64Big(${v})`,
            read: 'r.sint64Big()',
            toJson: (v) => `int64BigToJson(${v})`,
            fromJson: (x, l) => `int64BigFromJson(${x}, ${l})`,
          })
        : num({
            wireType: 0,
            size: (v) => `sizeSint64(${v})`,
            write: (v) => `w.sint64(${v})`,
            read: 'r.sint64()',
            toJson: str,
            fromJson: (x, l) => `int64FromJson(${x}, ${l})`,
          });
    case 'fixed64':
      return big
        ? bigc({
            wireType: 1,
            size: () => '8',
            fixedSize: 8,
            write: (v) => `w.fixed64Big(${v})`,
            read: 'r.fixed64Big()',
            toJson: (v) => `uint64BigToJson(${v})`,
            fromJson: (x, l) => `uint64BigFromJson(${x}, ${l})`,
          })
        : num({
            wireType: 1,
            size: () => '8',
            fixedSize: 8,
            write: (v) => `w.fixed64(${v})`,
            read: 'r.fixed64()',
            toJson: str,
            fromJson: (x, l) => `uint64FromJson(${x}, ${l})`,
          });
    case 'sfixed64':
      return big
        ? bigc({
            wireType: 1,
            size: () => '8',
            fixedSize: 8,
            write: (v) => `w.fixed64Big(${v})`,
            read: 'r.sfixed64Big()',
            toJson: (v) => `int64BigToJson(${v})`,
            fromJson: (x, l) => `int64BigFromJson(${x}, ${l})`,
          })
        : num({
            wireType: 1,
            size: () => '8',
            fixedSize: 8,
            write: (v) => `w.fixed64(${v})`,
            read: 'r.sfixed64()',
            toJson: str,
            fromJson: (x, l) => `int64FromJson(${x}, ${l})`,
          });
    case 'bool':
      return {
        ts: 'boolean',
        zero: 'false',
        wireType: 0,
        size: () => '1',
        fixedSize: 1,
        write: (v) => `w.bool(${v})`,
        read: 'r.bool()',
        present: truthy,
        toJson: (v) => v,
        fromJson: (x, l) => `boolFromJson(${x}, ${l})`,
      };
    case 'string':
      return {
        ts: 'string',
        zero: "''",
        wireType: 2,
        size: (v) => `sizeDelimited(sizeString(${v}))`,
        fixedSize: undefined,
        write: (v) => `w.string(${v}, sizeString(${v}))`,
        read: 'r.string()',
        present: truthy,
        toJson: (v) => v,
        fromJson: (x, l) => `stringFromJson(${x}, ${l})`,
      };
    case 'bytes':
      return {
        ts: 'Uint8Array',
        zero: 'EMPTY_BYTES',
        wireType: 2,
        size: (v) => `sizeDelimited(${v}.length)`,
        fixedSize: undefined,
        write: (v) => `w.bytes(${v})`,
        read: 'r.bytes()',
        present: (v) => `${v} !== undefined && ${v}.length > 0`,
        toJson: (v) => `bytesToJson(${v})`,
        fromJson: (x, l) => `bytesFromJson(${x}, ${l})`,
      };
  }
}

function sizeVarint32(v: number): number {
  let n = 1;
  while (v >= 128) {
    n++;
    v = Math.floor(v / 128);
  }
  return n;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** 'a' or 'an' before a message name, for readable doc comments. */
function article(name: string): string {
  return /^[AEIOU]/.test(name) ? 'an' : 'a';
}

function quote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A JSDoc block (one line when it fits) at the given indent; `*\/` in proto comments is defused. */
function doc(text: string | undefined, indent = ''): string[] {
  if (text === undefined || text === '') return [];
  const lines = text
    .replace(/\*\//g, '*\\/')
    .split('\n')
    .map((l) => l.trimEnd());
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [`${indent}/**`, ...lines.map((l) => (l === '' ? `${indent} *` : `${indent} * ${l}`)), `${indent} */`];
}

/** Identifiers the runtime modules export, imported by a generated file when its code uses them. */
const WIRE_NAMES = [
  'ProtoReader',
  'ProtoWriter',
  'ProtoDecodeError',
  'EMPTY_BYTES',
  'nestingDepthMax',
  'wrongWireType',
  'sizeVarint32',
  'sizeVarint64',
  'sizeInt32',
  'sizeVarintBig',
  'sizeSint32',
  'sizeSint64',
  'sizeSint64Big',
  'sizeDelimited',
  'sizeString',
];
const JSON_VALUE_NAMES = [
  'bytesToJson',
  'int64BigToJson',
  'uint64BigToJson',
  'floatToJson',
  'enumToJson',
  'objectFromJson',
  'arrayFromJson',
  'bytesFromJson',
  'stringFromJson',
  'boolFromJson',
  'int64FromJson',
  'uint64FromJson',
  'int64BigFromJson',
  'uint64BigFromJson',
  'int32FromJson',
  'uint32FromJson',
  'floatFromJson',
  'enumFromJson',
];
const JSON_TYPE_NAMES = ['JsonObject', 'JsonValue'];

/** Emits the TypeScript module for `file`. `runtimeDir` is where wire.ts, json.ts and service.ts live. */
export function emitFile(file: FileModel, runtimeDir: string): string {
  const e = new FileEmitter(file, runtimeDir);
  return e.emit();
}

class FileEmitter {
  private readonly out: string[] = [];
  /** Cross-file imports: module specifier → value names / type names. */
  private readonly imports = new Map<string, { values: Set<string>; types: Set<string> }>();
  private readonly exported = new Set<string>();

  constructor(
    private readonly file: FileModel,
    private readonly runtimeDir: string,
  ) {}

  emit(): string {
    for (const d of this.file.decls) {
      if (d.kind === 'enum') this.emitEnum(d.enum);
      else if (d.kind === 'message') this.emitMessage(d.message);
      else this.emitService(d.service);
    }
    const body = this.out.join('\n');
    const head: string[] = [
      `// Code generated by tools/protogen from ${this.file.proto}. DO NOT EDIT: change the .proto and run \`npm run protogen\`.`,
      `// Binary and JSON codecs${this.hasServices() ? ' and service descriptors' : ''} for package ${this.file.packageName}; see src/proto/README.md.`,
    ];
    const used = (names: string[]): string[] => names.filter((n) => new RegExp(`\\b${n}\\b`).test(body));
    const spec = (name: string): string => this.specifier(posix.join(this.runtimeDir, name));
    const wire = used(WIRE_NAMES);
    const jsonValues = used(JSON_VALUE_NAMES);
    const jsonTypes = used(JSON_TYPE_NAMES);
    const taken = new Set<string>();
    const claim = (n: string): void => {
      if (taken.has(n) || this.exported.has(n)) throw new Error(`protogen: ${this.file.proto}: identifier ${n} would be defined twice`);
      taken.add(n);
    };
    if (wire.length > 0) {
      head.push(`import { ${wire.join(', ')} } from '${spec('wire.js')}';`);
      wire.forEach(claim);
    }
    if (jsonTypes.length > 0) {
      head.push(`import type { ${jsonTypes.join(', ')} } from '${spec('json.js')}';`);
      jsonTypes.forEach(claim);
    }
    if (jsonValues.length > 0) {
      head.push(`import { ${jsonValues.join(', ')} } from '${spec('json.js')}';`);
      jsonValues.forEach(claim);
    }
    if (this.hasServices()) {
      head.push(`import type { ServiceDescriptor } from '${spec('service.js')}';`);
      claim('ServiceDescriptor');
    }
    for (const [mod, { values, types }] of [...this.imports].sort(([a], [b]) => a.localeCompare(b))) {
      if (types.size > 0) {
        head.push(`import type { ${[...types].join(', ')} } from '${mod}';`);
        types.forEach(claim);
      }
      if (values.size > 0) {
        head.push(`import { ${[...values].join(', ')} } from '${mod}';`);
        values.forEach(claim);
      }
    }
    return `${head.join('\n')}\n${body}\n`;
  }

  private hasServices(): boolean {
    return this.file.decls.some((d) => d.kind === 'service');
  }

  /** Relative import specifier from this file to a repo path ('src/proto/kv.js'). */
  private specifier(target: string): string {
    let rel = posix.relative(posix.dirname(this.file.out), target);
    if (!rel.startsWith('.')) rel = `./${rel}`;
    return rel;
  }

  private define(name: string): string {
    if (this.exported.has(name)) throw new Error(`protogen: ${this.file.proto}: identifier ${name} would be defined twice`);
    this.exported.add(name);
    return name;
  }

  /** The identifier for something of `ref` (its type, a function), importing it when it is in another file. */
  private use(ref: TypeRef, name: string, isType: boolean): string {
    if (ref.out !== this.file.out) {
      const mod = this.specifier(ref.out.replace(/\.ts$/, '.js'));
      let entry = this.imports.get(mod);
      if (entry === undefined) this.imports.set(mod, (entry = { values: new Set(), types: new Set() }));
      (isType ? entry.types : entry.values).add(name);
    }
    return name;
  }

  private typeName(ref: TypeRef): string {
    return this.use(ref, ref.tsName, true);
  }
  private initName(ref: TypeRef): string {
    return this.use(ref, `${ref.tsName}Init`, true);
  }
  private fn(ref: TypeRef, kind: 'size' | 'write' | 'read' | 'encode' | 'decode' | 'toJson' | 'fromJson' | 'fromJsonAt'): string {
    const name =
      kind === 'toJson' || kind === 'fromJson' || kind === 'fromJsonAt'
        ? `${lowerFirst(ref.tsName)}${kind.charAt(0).toUpperCase()}${kind.slice(1)}`
        : `${kind}${ref.tsName}`;
    return this.use(ref, name, false);
  }
  private enumValues(ref: TypeRef): string {
    return this.use(ref, ref.tsName, false);
  }
  private enumNames(ref: TypeRef): string {
    return this.use(ref, `${ref.tsName}_names`, false);
  }

  private line(s = ''): void {
    this.out.push(s);
  }

  // ------------------------------------------------------------------ enums

  private emitEnum(en: EnumModel): void {
    const names = new Map<number, string>();
    for (const v of en.values) if (!names.has(v.number)) names.set(v.number, v.name);
    this.line();
    this.out.push(...doc(en.comment === undefined ? `Enum ${en.fullName}.` : `${en.fullName}: ${en.comment}`));
    this.line(`export const ${this.define(en.tsName)} = {`);
    for (const v of en.values) {
      this.out.push(...doc(v.comment, '  '));
      this.line(`  ${v.name}: ${v.number},`);
    }
    this.line('} as const;');
    this.line(`/** Names of ${en.tsName} values by number (the first name of an aliased value). */`);
    const entries = [...names].map(([n, name]) => `${n < 0 ? quote(String(n)) : n}: ${quote(name)}`);
    this.line(`export const ${this.define(`${en.tsName}_names`)}: Record<number, string> = { ${entries.join(', ')} };`);
  }

  // ------------------------------------------------------------------ messages

  private tsType(f: FieldModel, init: boolean): string {
    if (f.kind === 'scalar') return scalarCodec(f.scalar as ScalarType, f.big).ts;
    if (f.kind === 'enum') return 'number';
    const ref = f.ref as TypeRef;
    return init ? this.initName(ref) : this.typeName(ref);
  }

  private codecOf(f: FieldModel): ScalarCodec {
    if (f.kind === 'scalar') return scalarCodec(f.scalar as ScalarType, f.big);
    // Enums travel as int32; JSON names come from the enum's maps.
    const ref = f.ref as TypeRef;
    const base = scalarCodec('int32', false);
    return {
      ...base,
      toJson: (v) => `enumToJson(${v}, ${this.enumNames(ref)})`,
      // Go names the enum type <package>.<Outer>_<Inner>, which is what its error message shows.
      fromJson: (x, l) =>
        `enumFromJson(${x}, ${l}, ${this.enumValues(ref)}, ${quote(ref.packageName === '' ? ref.tsName : `${ref.packageName}.${ref.tsName}`)})`,
    };
  }

  private emitMessage(m: MessageModel): void {
    const N = m.tsName;
    const l = lowerFirst(N);
    const wireOrder = [...m.fields].sort((a, b) => a.id - b.id);

    // interface
    this.line();
    this.out.push(...doc(m.comment === undefined ? `${m.fullName}, as decoded: every field present.` : `${m.fullName}: ${m.comment}`));
    this.line(`export interface ${this.define(N)} {`);
    for (const f of m.fields) {
      const note = f.big ? `${f.comment === undefined ? '' : `${f.comment} `}(64-bit ID: bigint)` : f.comment;
      this.out.push(...doc(note, '  '));
      const t = this.tsType(f, false);
      if (f.oneof !== undefined) this.line(`  ${f.name}?: ${t};`);
      else if (f.repeated) this.line(`  ${f.name}: ${t}[];`);
      else if (f.kind === 'message') this.line(`  ${f.name}: ${t} | undefined;`);
      else this.line(`  ${f.name}: ${t};`);
    }
    this.line('}');

    // Init interface
    this.line(`/** What encode${N} accepts: every field optional (absent = the zero value); submessages as Init. */`);
    this.line(`export interface ${this.define(`${N}Init`)} {`);
    for (const f of m.fields) {
      const t = this.tsType(f, true);
      this.line(`  ${f.name}?: ${f.repeated ? `${t}[]` : t};`);
      if (f.splice) {
        const ref = f.ref as TypeRef;
        this.line(
          `  /** Not a proto field: ${ref.fullName} messages already encoded, written verbatim as field ${f.id} in place of ${f.name} (which is then ignored). */`,
        );
        this.line(`  ${f.name}_encoded?: Uint8Array[];`);
      }
    }
    this.line('}');

    this.emitSize(m, wireOrder);
    this.emitWrite(m, wireOrder);

    this.line();
    this.line(`/** Encodes ${article(N)} ${N} into a new buffer of exactly the right size. */`);
    this.line(`export function ${this.define(`encode${N}`)}(m: ${N}Init): Uint8Array {`);
    this.line(`  const w = new ProtoWriter(size${N}(m));`);
    this.line(`  write${N}(m, w);`);
    this.line('  return w.finish();');
    this.line('}');

    this.emitRead(m);

    this.line();
    this.line(`/** Decodes ${article(N)} ${N}; bytes fields are views into \`buf\`. Throws ProtoDecodeError on malformed input. */`);
    this.line(`export function ${this.define(`decode${N}`)}(buf: Uint8Array): ${N} {`);
    this.line(`  return read${N}(new ProtoReader(buf), buf.length);`);
    this.line('}');

    this.emitToJson(m, l);
    this.emitFromJson(m, l);
  }

  private tagOf(f: FieldModel, wireType: number): { tag: number; tagBytes: number } {
    const tag = f.id * 8 + wireType;
    return { tag, tagBytes: sizeVarint32(tag) };
  }

  private emitSize(m: MessageModel, fields: FieldModel[]): void {
    const N = m.tsName;
    this.line();
    this.line(`/** Exact encoded size of ${article(N)} ${N} in bytes (without a length prefix). */`);
    if (fields.length === 0) {
      this.line(`export function ${this.define(`size${N}`)}(_m: ${N}Init): number {`);
      this.line('  return 0;');
      this.line('}');
      return;
    }
    this.line(`export function ${this.define(`size${N}`)}(m: ${N}Init): number {`);
    this.line('  let n = 0;');
    const oneofVar = new Map<string, string>();
    m.oneofs.forEach((o, i) => {
      oneofVar.set(o.name, `set${i}`);
      this.line(`  let set${i} = 0;`);
    });
    for (const f of fields) {
      const v = `m.${f.name}`;
      if (f.kind === 'message') {
        const ref = f.ref as TypeRef;
        const { tagBytes } = this.tagOf(f, 2);
        if (f.repeated) {
          if (f.splice) {
            this.line(`  if (m.${f.name}_encoded !== undefined) {`);
            this.line(`    const a = m.${f.name}_encoded;`);
            this.line(`    for (let i = 0; i < a.length; i++) n += ${tagBytes} + sizeDelimited(a[i].length);`);
            this.line(`  } else if (${v} !== undefined) {`);
          } else {
            this.line(`  if (${v} !== undefined) {`);
          }
          this.line(`    const a = ${v};`);
          this.line(`    for (let i = 0; i < a.length; i++) n += ${tagBytes} + sizeDelimited(${this.fn(ref, 'size')}(a[i]));`);
          this.line('  }');
        } else {
          const count = f.oneof !== undefined ? ` ${oneofVar.get(f.oneof)}++;` : '';
          this.line(`  if (${v} !== undefined) { n += ${tagBytes} + sizeDelimited(${this.fn(ref, 'size')}(${v}));${count} }`);
        }
        continue;
      }
      const c = this.codecOf(f);
      if (f.repeated) {
        if (f.packed) {
          const { tagBytes } = this.tagOf(f, 2);
          this.line(`  if (${v} !== undefined && ${v}.length > 0) {`);
          if (c.fixedSize !== undefined) {
            this.line(`    n += ${tagBytes} + sizeDelimited(${v}.length * ${c.fixedSize});`);
          } else {
            this.line(`    const a = ${v};`);
            this.line('    let s = 0;');
            this.line(`    for (let i = 0; i < a.length; i++) s += ${c.size('a[i]')};`);
            this.line(`    n += ${tagBytes} + sizeDelimited(s);`);
          }
          this.line('  }');
        } else {
          const { tagBytes } = this.tagOf(f, c.wireType);
          this.line(`  if (${v} !== undefined) {`);
          this.line(`    const a = ${v};`);
          this.line(`    for (let i = 0; i < a.length; i++) n += ${tagBytes} + ${c.size('a[i]')};`);
          this.line('  }');
        }
        continue;
      }
      const { tagBytes } = this.tagOf(f, c.wireType);
      if (f.oneof !== undefined) {
        this.line(`  if (${v} !== undefined) { n += ${tagBytes} + ${c.size(v)}; ${oneofVar.get(f.oneof)}++; }`);
      } else {
        this.line(`  if (${c.present(v)}) n += ${tagBytes} + ${c.size(v)};`);
      }
    }
    for (const o of m.oneofs) {
      this.line(`  if (${oneofVar.get(o.name)} > 1) throw new Error(${quote(`${N}: more than one field of oneof ${o.name} is set`)});`);
    }
    this.line('  return n;');
    this.line('}');
  }

  private emitWrite(m: MessageModel, fields: FieldModel[]): void {
    const N = m.tsName;
    this.line();
    this.line(`/** Writes ${article(N)} ${N}'s fields at w.pos (no length prefix); w must have room for size${N}(m) bytes. */`);
    if (fields.length === 0) {
      this.line(`export function ${this.define(`write${N}`)}(_m: ${N}Init, _w: ProtoWriter): void {`);
      this.line('  // no fields');
      this.line('}');
      return;
    }
    this.line(`export function ${this.define(`write${N}`)}(m: ${N}Init, w: ProtoWriter): void {`);
    for (const f of fields) {
      const v = `m.${f.name}`;
      if (f.kind === 'message') {
        const ref = f.ref as TypeRef;
        const { tag } = this.tagOf(f, 2);
        const size = this.fn(ref, 'size');
        const write = this.fn(ref, 'write');
        if (f.repeated) {
          if (f.splice) {
            this.line(`  if (m.${f.name}_encoded !== undefined) {`);
            this.line(`    const a = m.${f.name}_encoded;`);
            this.line(`    for (let i = 0; i < a.length; i++) { w.uint32(${tag}); w.bytes(a[i]); }`);
            this.line(`  } else if (${v} !== undefined) {`);
          } else {
            this.line(`  if (${v} !== undefined) {`);
          }
          this.line(`    const a = ${v};`);
          this.line(`    for (let i = 0; i < a.length; i++) { const x = a[i]; w.uint32(${tag}); w.uint32(${size}(x)); ${write}(x, w); }`);
          this.line('  }');
        } else {
          this.line(`  if (${v} !== undefined) { w.uint32(${tag}); w.uint32(${size}(${v})); ${write}(${v}, w); }`);
        }
        continue;
      }
      const c = this.codecOf(f);
      if (f.repeated) {
        if (f.packed) {
          const { tag } = this.tagOf(f, 2);
          this.line(`  if (${v} !== undefined && ${v}.length > 0) {`);
          this.line(`    const a = ${v};`);
          if (c.fixedSize !== undefined) {
            this.line(`    w.uint32(${tag}); w.uint32(a.length * ${c.fixedSize});`);
          } else {
            this.line('    let s = 0;');
            this.line(`    for (let i = 0; i < a.length; i++) s += ${c.size('a[i]')};`);
            this.line(`    w.uint32(${tag}); w.uint32(s);`);
          }
          this.line(`    for (let i = 0; i < a.length; i++) ${c.write('a[i]')};`);
          this.line('  }');
        } else {
          const { tag } = this.tagOf(f, c.wireType);
          this.line(`  if (${v} !== undefined) {`);
          this.line(`    const a = ${v};`);
          this.line(`    for (let i = 0; i < a.length; i++) { w.uint32(${tag}); ${c.write('a[i]')}; }`);
          this.line('  }');
        }
        continue;
      }
      const { tag } = this.tagOf(f, c.wireType);
      const cond = f.oneof !== undefined ? `${v} !== undefined` : c.present(v);
      this.line(`  if (${cond}) { w.uint32(${tag}); ${c.write(v)}; }`);
    }
    this.line('}');
  }

  private defaultsLiteral(m: MessageModel): string {
    const parts: string[] = [];
    for (const f of m.fields) {
      if (f.oneof !== undefined) continue;
      if (f.repeated) parts.push(`${f.name}: []`);
      else if (f.kind === 'message') parts.push(`${f.name}: undefined`);
      else parts.push(`${f.name}: ${this.codecOf(f).zero}`);
    }
    return parts.length === 0 ? '{}' : `{ ${parts.join(', ')} }`;
  }

  /** Statements that drop the other members of f's oneof (input that sets two: the last one wins). */
  private clearOthers(m: MessageModel, f: FieldModel): string {
    const o = m.oneofs.find((x) => x.name === f.oneof);
    if (o === undefined) return '';
    return o.fields
      .filter((n) => n !== f.name)
      .map((n) => ` if (m.${n} !== undefined) delete m.${n};`)
      .join('');
  }

  private emitRead(m: MessageModel): void {
    const N = m.tsName;
    this.line();
    this.line(
      `/** Reads ${article(N)} ${N} from r up to \`end\` (a length prefix, if any, is already consumed). Throws ProtoDecodeError. */`,
    );
    this.line(`export function ${this.define(`read${N}`)}(r: ProtoReader, end: number): ${N} {`);
    this.line(`  const m: ${N} = ${this.defaultsLiteral(m)};`);
    this.line('  while (r.pos < end) {');
    this.line('    const t = r.tag();');
    if (m.fields.length === 0) {
      this.line('    r.skipField(t);');
    } else {
      this.line('    switch (t) {');
      for (const f of [...m.fields].sort((a, b) => a.id - b.id)) {
        const v = `m.${f.name}`;
        const label = `${N}.${f.name}`;
        if (f.kind === 'message') {
          const ref = f.ref as TypeRef;
          const { tag } = this.tagOf(f, 2);
          const read = this.fn(ref, 'read');
          const call = f.recursive
            ? `if (++r.depth > nestingDepthMax) throw new ProtoDecodeError(${quote(`${label}: nested too deeply`)}); const x = ${read}(r, e); r.depth--;`
            : `const x = ${read}(r, e);`;
          const assign = f.repeated ? `${v}.push(x);` : `${v} = x;${this.clearOthers(m, f)}`;
          this.line(`      case ${tag}: { const e = r.delimitedEnd(); ${call} ${assign} break; }`);
          continue;
        }
        const c = this.codecOf(f);
        if (f.repeated) {
          // Parsers must take both forms of a packable field, whatever the .proto says.
          if (c.wireType !== 2) {
            const { tag } = this.tagOf(f, 2);
            this.line(`      case ${tag}: {`);
            this.line('        const e = r.delimitedEnd();');
            this.line(`        while (r.pos < e) ${v}.push(${c.read});`);
            this.line(`        if (r.pos !== e) throw new ProtoDecodeError(${quote(`${label}: packed field runs past its end`)});`);
            this.line('        break;');
            this.line('      }');
          }
          const { tag } = this.tagOf(f, c.wireType);
          this.line(`      case ${tag}: ${v}.push(${c.read}); break;`);
          continue;
        }
        const { tag } = this.tagOf(f, c.wireType);
        this.line(`      case ${tag}: ${v} = ${c.read};${this.clearOthers(m, f)} break;`);
      }
      this.line('      default:');
      this.line('        switch (t >>> 3) {');
      for (const f of [...m.fields].sort((a, b) => a.id - b.id)) {
        this.line(`          case ${f.id}: throw wrongWireType(${quote(N)}, ${quote(f.name)}, t);`);
      }
      this.line('        }');
      this.line('        r.skipField(t);');
      this.line('    }');
    }
    this.line('  }');
    this.line(`  if (r.pos !== end) throw new ProtoDecodeError(${quote(`${N}: field runs past the end of the message`)});`);
    this.line('  return m;');
    this.line('}');
  }

  private emitToJson(m: MessageModel, l: string): void {
    const N = m.tsName;
    this.line();
    this.line(`/** ${N} as protobuf JSON the way etcd's gateway writes it: proto field names, zero values left out. */`);
    if (m.fields.length === 0) {
      this.line(`export function ${this.define(`${l}ToJson`)}(_m: ${N}Init): JsonObject {`);
      this.line('  return {};');
      this.line('}');
      return;
    }
    this.line(`export function ${this.define(`${l}ToJson`)}(m: ${N}Init): JsonObject {`);
    this.line('  const o: JsonObject = {};');
    for (const f of m.fields) {
      const v = `m.${f.name}`;
      let conv: (x: string) => string;
      if (f.kind === 'message') {
        const toJson = this.fn(f.ref as TypeRef, 'toJson');
        conv = (x) => `${toJson}(${x})`;
      } else {
        conv = this.codecOf(f).toJson;
      }
      if (f.repeated) {
        if (f.splice) {
          const ref = f.ref as TypeRef;
          const decode = this.fn(ref, 'decode');
          this.line(`  if (m.${f.name}_encoded !== undefined) {`);
          this.line(`    const a = m.${f.name}_encoded;`);
          this.line('    if (a.length > 0) {');
          this.line('      const j: JsonValue[] = new Array(a.length);');
          this.line(`      for (let i = 0; i < a.length; i++) j[i] = ${conv(`${decode}(a[i])`)};`);
          this.line(`      o.${f.name} = j;`);
          this.line('    }');
          this.line(`  } else if (${v} !== undefined && ${v}.length > 0) {`);
        } else {
          this.line(`  if (${v} !== undefined && ${v}.length > 0) {`);
        }
        this.line(`    const a = ${v};`);
        this.line('    const j: JsonValue[] = new Array(a.length);');
        this.line(`    for (let i = 0; i < a.length; i++) j[i] = ${conv('a[i]')};`);
        this.line(`    o.${f.name} = j;`);
        this.line('  }');
        continue;
      }
      const cond = f.oneof !== undefined || f.kind === 'message' ? `${v} !== undefined` : this.codecOf(f).present(v);
      this.line(`  if (${cond}) o.${f.name} = ${conv(v)};`);
    }
    this.line('  return o;');
    this.line('}');
  }

  private emitFromJson(m: MessageModel, l: string): void {
    const N = m.tsName;
    this.line();
    this.line(`/**`);
    this.line(` * Parses ${article(N)} ${N} from protobuf JSON: proto or lowerCamel field names, 64-bit integers as strings or`);
    this.line(' * numbers, bytes as base64, enums by name or number; unknown fields are ignored and null means unset.');
    this.line(' * Throws ProtoDecodeError naming the field on malformed input.');
    this.line(' */');
    if (m.recursive) {
      // Self-referencing messages carry the nesting depth so hostile JSON cannot exhaust the stack.
      this.line(`export function ${this.define(`${l}FromJson`)}(v: unknown): ${N} {`);
      this.line(`  return ${l}FromJsonAt(v, 0);`);
      this.line('}');
      this.line(`/** ${l}FromJson at a nesting depth (counted over self-referencing messages only). */`);
      this.line(`export function ${this.define(`${l}FromJsonAt`)}(v: unknown, depth: number): ${N} {`);
    } else {
      this.line(`export function ${this.define(`${l}FromJson`)}(v: unknown): ${N} {`);
    }
    this.line(`  const m: ${N} = ${this.defaultsLiteral(m)};`);
    this.line(`  const o = objectFromJson(v, ${quote(N)});`);
    this.line('  if (o === undefined) return m;');
    if (m.recursive) {
      this.line(`  if (depth > nestingDepthMax) throw new ProtoDecodeError(${quote(`${N}: nested too deeply`)});`);
    }
    if (m.fields.length > 0) {
      this.line('  for (const k in o) {');
      this.line('    const x = o[k];');
      this.line('    if (x === null || x === undefined) continue;');
      this.line('    switch (k) {');
      for (const f of m.fields) {
        const label = quote(`${N}.${f.name}`);
        const cases = f.jsonName === f.name ? `case ${quote(f.name)}:` : `case ${quote(f.name)}: case ${quote(f.jsonName)}:`;
        let conv: (x: string) => string;
        if (f.kind === 'message' && f.recursive) {
          const fromJsonAt = this.fn(f.ref as TypeRef, 'fromJsonAt');
          conv = (x) => `${fromJsonAt}(${x}, depth + 1)`;
        } else if (f.kind === 'message') {
          const fromJson = this.fn(f.ref as TypeRef, 'fromJson');
          conv = (x) => `${fromJson}(${x})`;
        } else {
          const c = this.codecOf(f);
          conv = (x) => c.fromJson(x, label);
        }
        if (f.repeated) {
          this.line(`      ${cases} {`);
          this.line(`        const a = arrayFromJson(x, ${label});`);
          this.line(`        ${`m.${f.name}`} = [];`);
          this.line(`        for (let i = 0; i < a.length; i++) m.${f.name}.push(${conv('a[i]')});`);
          this.line('        break;');
          this.line('      }');
        } else if (f.oneof !== undefined) {
          const o = m.oneofs.find((x) => x.name === f.oneof);
          const others = (o?.fields ?? []).filter((n) => n !== f.name).map((n) => `m.${n} !== undefined`);
          if (others.length > 0) {
            this.line(`      ${cases}`);
            this.line(
              `        if (${others.join(' || ')}) throw new ProtoDecodeError(${quote(`${N}: more than one field of oneof ${f.oneof} is set`)});`,
            );
            this.line(`        m.${f.name} = ${conv('x')};`);
            this.line('        break;');
          } else {
            this.line(`      ${cases} m.${f.name} = ${conv('x')}; break;`);
          }
        } else {
          this.line(`      ${cases} m.${f.name} = ${conv('x')}; break;`);
        }
      }
      this.line('    }');
      this.line('  }');
    }
    this.line('  return m;');
    this.line('}');
  }

  // ------------------------------------------------------------------ services

  private emitService(s: ServiceModel): void {
    this.line();
    this.out.push(...doc(s.comment === undefined ? `Descriptor of the ${s.fullName} service.` : `${s.fullName}: ${s.comment}`));
    this.line(`export const ${this.define(s.name)} = {`);
    this.line(`  name: ${quote(s.fullName)},`);
    this.line('  methods: {');
    for (const m of s.methods) {
      this.out.push(...doc(m.comment, '    '));
      this.line(`    ${m.name}: {`);
      this.line(`      name: ${quote(m.name)},`);
      this.line(`      path: ${quote(`/${s.fullName}/${m.name}`)},`);
      this.line(`      requestStream: ${m.requestStream},`);
      this.line(`      responseStream: ${m.responseStream},`);
      this.line(`      httpPaths: [${m.httpPaths.map(quote).join(', ')}],`);
      this.line(`      decodeRequest: ${this.fn(m.request, 'decode')},`);
      this.line(`      encodeRequest: ${this.fn(m.request, 'encode')},`);
      this.line(`      decodeResponse: ${this.fn(m.response, 'decode')},`);
      this.line(`      encodeResponse: ${this.fn(m.response, 'encode')},`);
      this.line(`      sizeResponse: ${this.fn(m.response, 'size')},`);
      this.line(`      writeResponse: ${this.fn(m.response, 'write')},`);
      this.line(`      requestFromJson: ${this.fn(m.request, 'fromJson')},`);
      this.line(`      requestToJson: ${this.fn(m.request, 'toJson')},`);
      this.line(`      responseFromJson: ${this.fn(m.response, 'fromJson')},`);
      this.line(`      responseToJson: ${this.fn(m.response, 'toJson')},`);
      this.line('    },');
    }
    this.line('  },');
    this.line('} as const satisfies ServiceDescriptor;');
  }
}
