// --auth-token as etcd parses it (auth/store.go NewTokenProvider, auth/options.go): the provider a member
// issues and checks tokens with. Key files are read once at start; a bad option stops the member.
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseGoDuration } from '../config/values.js';
import { JWT_METHODS, JwtTokens, NoTokens, SimpleTokens, invalidOpts, parseAuthTokenOption, type TokenProvider } from '../auth/tokens.js';

/** A key file as etcd reads it (PEM; HS* methods take the file's bytes as the secret). */
function loadKey(file: string, priv: boolean, method: string): KeyObject {
  try {
    const pem = readFileSync(file);
    if (method.startsWith('HS')) return createSecretKey(pem);
    return priv ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (err) {
    throw invalidOpts(`cannot load ${priv ? 'private' : 'public'} key ${file}: ${(err as Error).message}`);
  }
}

/** Builds the provider `--auth-token` names (throws on bad options, as etcd refuses to start). */
export function tokenProviderFor(opt: string, ttlSec: number, now: () => number): TokenProvider {
  const { type, opts } = parseAuthTokenOption(opt);
  switch (type) {
    case 'simple':
      return new SimpleTokens({ ttlMs: ttlSec * 1000, now });
    case '':
      return new NoTokens();
    case 'jwt': {
      const method = opts.get('sign-method') ?? '';
      if (!JWT_METHODS.has(method)) throw invalidOpts('auth: invalid auth signature method');
      let ttlMs = 5 * 60_000;
      const ttl = opts.get('ttl');
      if (ttl !== undefined && ttl !== '') {
        const d = parseGoDuration(ttl);
        if (typeof d !== 'bigint') throw invalidOpts(d.error);
        ttlMs = Number(d / 1_000_000n);
      }
      const privFile = opts.get('priv-key');
      const pubFile = opts.get('pub-key');
      const privateKey = privFile ? loadKey(privFile, true, method) : undefined;
      const publicKey = pubFile && !method.startsWith('HS') ? loadKey(pubFile, false, method) : undefined;
      if (privateKey === undefined && publicKey === undefined) throw invalidOpts('auth: missing key data');
      return new JwtTokens({ signMethod: method, privateKey, publicKey, ttlMs, now });
    }
    default:
      throw invalidOpts(`unknown token type: ${type}`);
  }
}
