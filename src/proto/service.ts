// Types of the service descriptors that tools/protogen emits next to the codecs (KV, Watch, ...):
// everything a gRPC server or the JSON gateway needs to serve one method, with no reflection.
import type { ProtoWriter } from './wire.js';
import type { JsonObject } from './json.js';

/**
 * One RPC. `Req`/`Res` are the decoded message types, `ReqInit`/`ResInit` what the encoders accept.
 * Example: `KV.methods.Range.decodeRequest(body)` gives a RangeRequest; a handler returns a
 * RangeResponseInit that `encodeResponse` (or `sizeResponse` + `writeResponse`) turns into bytes.
 */
export interface MethodDescriptor<Req, ReqInit, Res, ResInit> {
  /** Method name, e.g. 'Range'. */
  readonly name: string;
  /** gRPC path, e.g. '/etcdserverpb.KV/Range'. */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  /** The gateway's POST paths from the proto's google.api.http option, primary first; empty if none. */
  readonly httpPaths: readonly string[];
  readonly decodeRequest: (buf: Uint8Array) => Req;
  readonly encodeRequest: (m: ReqInit) => Uint8Array;
  readonly decodeResponse: (buf: Uint8Array) => Res;
  readonly encodeResponse: (m: ResInit) => Uint8Array;
  /** Exact encoded size of a response; with writeResponse a server can fill a frame it allocated. */
  readonly sizeResponse: (m: ResInit) => number;
  readonly writeResponse: (m: ResInit, w: ProtoWriter) => void;
  readonly requestFromJson: (v: unknown) => Req;
  readonly requestToJson: (m: ReqInit) => JsonObject;
  readonly responseFromJson: (v: unknown) => Res;
  readonly responseToJson: (m: ResInit) => JsonObject;
}

/** Any method descriptor (the message types erased). */
// `never` in the input positions makes every concrete descriptor assignable to this one.
export type AnyMethodDescriptor = MethodDescriptor<unknown, never, unknown, never>;

/** A service: its full proto name and its methods by name. */
export interface ServiceDescriptor {
  /** e.g. 'etcdserverpb.KV' */
  readonly name: string;
  readonly methods: { readonly [method: string]: AnyMethodDescriptor };
}

/** The decoded request type of a method descriptor: `RequestOf<typeof KV.methods.Range>` is RangeRequest. */
export type RequestOf<M extends { decodeRequest: (buf: Uint8Array) => unknown }> = ReturnType<M['decodeRequest']>;
/** What the method's response encoder accepts: `ResponseInitOf<typeof KV.methods.Range>` is RangeResponseInit. */
export type ResponseInitOf<M extends { encodeResponse: (m: never) => Uint8Array }> = Parameters<M['encodeResponse']>[0];
/** The decoded response type (client side). */
export type ResponseOf<M extends { decodeResponse: (buf: Uint8Array) => unknown }> = ReturnType<M['decodeResponse']>;
/** What the method's request encoder accepts (client side). */
export type RequestInitOf<M extends { encodeRequest: (m: never) => Uint8Array }> = Parameters<M['encodeRequest']>[0];
