// Signed impressions: the ad-serving side gets `/c/<adId>?imp&exp&sig[&kid]` from POST /v1/impressions
// and the click path checks it. The signature is HMAC-SHA256 over `${adId}.${imp}.${exp}` (base64url),
// compared in constant time; pure functions, no I/O.
//
// Key rotation: an impression names the key that signed it (`kid`), so a new key can sign while the
// previous one still checks the impressions it signed until they expire. A URL without `kid` (every
// URL issued before key ids existed, and those signed with ADCLICK_SIGNING_SECRET alone) is checked
// with the unnamed key. An unknown `kid` is a bad signature, decided without any HMAC.
//
// Ad servers sign impressions themselves with the same scheme (docs/impressions.md, the signer module
// packages/impression-signer, tested against the same vectors) and so choose the expiry: an expiry
// further away than the impression lifetime plus IMPRESSION_EXPIRY_SKEW_MS is a bad signature (the
// expiry sets the dedup's Redis TTL and the batch layer's lookback).
import { createHash, createHmac, hash, randomUUID, timingSafeEqual } from 'node:crypto';
import { config } from '../common/config.js';
import { DEV_DEFAULTS } from '../common/production.js';

export interface Impression {
  impressionId: string;
  adId: string;
  /** Epoch ms after which a click is `expired`. */
  expiresAt: number;
  sig: string;
  /** Id of the key that signed it; absent for the unnamed key. */
  kid?: string;
}

/** The keys of the click path: one signs, every listed one checks what it signed. */
export interface SigningKeys {
  /** Signs new impressions; `id` goes into the click URL (none: the unnamed key). */
  current: { id?: string; secret: string };
  /** Secrets by key id, for clicks that name their key. */
  byId: ReadonlyMap<string, string>;
  /** Checks clicks that name no key. */
  unnamed: string;
}

/**
 * The keyring from ADCLICK_SIGNING_KEYS ("k2:secret2,k1:secret1", current first) and
 * ADCLICK_SIGNING_SECRET. Without keys, the secret alone signs and checks, with no key id (the URLs
 * of before key ids). With keys, URLs without a key id are checked with the secret, unless it is
 * the development default (i.e. not set), then with the current key.
 */
export function signingKeys(keysText: string | undefined, secret: string): SigningKeys {
  const entries = (keysText ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
    .map((e) => {
      const at = e.indexOf(':');
      return { id: e.slice(0, at), secret: e.slice(at + 1) };
    });
  const first = entries[0];
  if (!first) return { current: { secret }, byId: new Map(), unnamed: secret };
  return {
    current: first,
    byId: new Map(entries.map((e) => [e.id, e.secret])),
    unnamed: secret === DEV_DEFAULTS.ADCLICK_SIGNING_SECRET ? first.secret : secret,
  };
}

/** The keyring of the configuration (ADCLICK_SIGNING_KEYS, ADCLICK_SIGNING_SECRET). */
export const configuredSigningKeys = (): SigningKeys =>
  signingKeys(config.ADCLICK_SIGNING_KEYS, config.ADCLICK_SIGNING_SECRET);

/** A single secret (tests, tools) as a keyring: it signs and checks URLs without a key id. */
const asKeys = (keys: SigningKeys | string): SigningKeys =>
  typeof keys === 'string' ? { current: { secret: keys }, byId: new Map(), unnamed: keys } : keys;

/** How far past the impression lifetime an expiry may be (clock skew between an ad server and us). */
export const IMPRESSION_EXPIRY_SKEW_MS = 60_000;

/** The longest time from now to an impression's expiry that a click accepts (ADCLICK_IMPRESSION_TTL_S + skew). */
export const configuredMaxLifetimeMs = (): number =>
  config.ADCLICK_IMPRESSION_TTL_S * 1000 + IMPRESSION_EXPIRY_SKEW_MS;

/** What the signature and expiry say about a click, before the duplicate check. */
export type ImpressionCheck = 'ok' | 'bad_signature' | 'expired';

/** Impression ids we issue are UUIDs; anything else in a click is not ours (and too long to log). */
const IMPRESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EXPIRY = /^[1-9][0-9]{0,15}$/;

export const isImpressionId = (s: string): boolean => IMPRESSION_ID.test(s);

// HMAC-SHA256 as RFC 2104 defines it, H((K ^ opad) || H((K ^ ipad) || m)), with each key's padded
// blocks made once and each hash taken in one call (crypto.hash): a click checks one signature, and
// createHmac's object (and its key import) cost more than the two hashes of a short message. The
// test vectors of ingest/impression.test.ts and packages/impression-signer pin the result.
const BLOCK = 64;
/** The longest message (bytes) signed through the scratch buffer; longer ones take createHmac. */
const MAX_FAST_MESSAGE = 256;

class HmacSha256 {
  private readonly inner = Buffer.alloc(BLOCK + MAX_FAST_MESSAGE);
  private readonly outer = Buffer.alloc(BLOCK + 32);

  constructor(private readonly secret: string) {
    let key = Buffer.from(secret, 'utf8');
    if (key.length > BLOCK) key = createHash('sha256').update(key).digest();
    for (let i = 0; i < BLOCK; i++) {
      const k = i < key.length ? key[i]! : 0;
      this.inner[i] = k ^ 0x36;
      this.outer[i] = k ^ 0x5c;
    }
  }

  /** base64url of the MAC of `message` (UTF-8). */
  sign(message: string): string {
    // A UTF-8 character is at most 3 bytes per UTF-16 unit, so this bound never truncates.
    if (message.length * 3 > MAX_FAST_MESSAGE)
      return createHmac('sha256', this.secret).update(message).digest('base64url');
    const n = this.inner.write(message, BLOCK, 'utf8');
    // The inner digest comes as a 'binary' (latin1) string, one character per byte, written into
    // place: a 'buffer' digest allocates a backing store per call, about a microsecond more on Node 20.
    this.outer.write(hash('sha256', this.inner.subarray(0, BLOCK + n), 'binary'), BLOCK, 'latin1');
    return hash('sha256', this.outer, 'base64url');
  }
}

const macs = new Map<string, HmacSha256>();
function macOf(secret: string): HmacSha256 {
  let mac = macs.get(secret);
  if (!mac) {
    if (macs.size > 16) macs.clear();
    mac = new HmacSha256(secret);
    macs.set(secret, mac);
  }
  return mac;
}

export function signImpression(
  secret: string,
  adId: string,
  impressionId: string,
  expiresAt: number,
): string {
  return macOf(secret).sign(`${adId}.${impressionId}.${expiresAt}`);
}

export function newImpression(
  keys: SigningKeys | string,
  adId: string,
  ttlSeconds: number,
  now: number,
): Impression {
  const { current } = asKeys(keys);
  const impressionId = randomUUID();
  const expiresAt = now + ttlSeconds * 1000;
  const sig = signImpression(current.secret, adId, impressionId, expiresAt);
  return { impressionId, adId, expiresAt, sig, ...(current.id !== undefined && { kid: current.id }) };
}

/** The click URL path of an impression, relative to the click service's base URL. */
export function clickPath(i: Impression): string {
  const kid = i.kid === undefined ? '' : `&kid=${encodeURIComponent(i.kid)}`;
  return `/c/${i.adId}?imp=${i.impressionId}&exp=${i.expiresAt}&sig=${i.sig}${kid}`;
}

/**
 * Mints impressions of any ad with `keys` and a lifetime of `ttlSeconds`, each with its click URL
 * path: what the catalogue API's impression routes hand out (apps/api.ts wires it into them).
 */
export function impressionMinter(
  keys: SigningKeys | string,
  ttlSeconds: number,
): (adId: string, now: number) => Impression & { clickPath: string } {
  return (adId, now) => {
    const impression = newImpression(keys, adId, ttlSeconds, now);
    return { ...impression, clickPath: clickPath(impression) };
  };
}

/** The parameters of a click's query that the click path reads (null: absent). */
export interface ClickQuery {
  imp: string | null;
  exp: string | null;
  sig: string | null;
  kid: string | null;
}

/**
 * `imp`, `exp`, `sig` and `kid` of a click's query string (without the `?`), as URLSearchParams
 * reads them (the first of a repeated name wins). The URLs we issue hold no escapes, so a query
 * without `%` or `+` is split by hand (once per click); any other goes through URLSearchParams.
 */
export function parseClickQuery(query: string): ClickQuery {
  const q: ClickQuery = { imp: null, exp: null, sig: null, kid: null };
  if (query.includes('%') || query.includes('+')) {
    const params = new URLSearchParams(query);
    q.imp = params.get('imp');
    q.exp = params.get('exp');
    q.sig = params.get('sig');
    q.kid = params.get('kid');
    return q;
  }
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    if (end > start) {
      const eq = query.indexOf('=', start);
      const nameEnd = eq === -1 || eq > end ? end : eq;
      const value = nameEnd === end ? '' : query.slice(nameEnd + 1, end);
      const name = query.slice(start, nameEnd);
      if (name === 'imp' || name === 'exp' || name === 'sig' || name === 'kid') q[name] ??= value;
    }
    start = end + 1;
  }
  return q;
}

/**
 * Checks the query parameters of a click against `adId`. The signature is checked first, so an
 * unsigned or tampered link is `bad_signature` whatever its expiry says; so is one naming a key id
 * the keyring does not have, and one whose expiry is further than `maxLifetimeMs` away (decided
 * before any HMAC). That bound is taken on the real clock: a failure drill's clock
 * (ADCLICK_CLOCK_OFFSET_MS) moves `now` into the past while impressions are minted on the real one.
 */
export function checkImpression(
  keys: SigningKeys | string,
  adId: string,
  imp: string | null,
  exp: string | null,
  sig: string | null,
  now: number,
  kid: string | null = null,
  maxLifetimeMs: number = configuredMaxLifetimeMs(),
): ImpressionCheck {
  if (!imp || !exp || !sig || !isImpressionId(imp) || !EXPIRY.test(exp)) return 'bad_signature';
  if (Number(exp) > now - config.ADCLICK_CLOCK_OFFSET_MS + maxLifetimeMs) return 'bad_signature';
  const ring = asKeys(keys);
  const secret = kid === null ? ring.unnamed : ring.byId.get(kid);
  if (secret === undefined) return 'bad_signature';
  const expected = Buffer.from(signImpression(secret, adId, imp, Number(exp)), 'utf8');
  const given = Buffer.from(sig, 'utf8');
  // timingSafeEqual needs equal lengths; a length mismatch leaks only the (public) signature length.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad_signature';
  return Number(exp) <= now ? 'expired' : 'ok';
}
