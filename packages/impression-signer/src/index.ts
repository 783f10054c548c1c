// @adclick/impression-signer: mints adclick impressions inside an ad server, at the ad server's rate,
// with no network call and no dependency (node:crypto only). The scheme (docs/impressions.md): the
// click URL is `/c/<adId>?imp=<uuid>&exp=<epoch ms>&sig=<sig>&kid=<key id>` where
// sig = base64url(HMAC-SHA256(secret, `${adId}.${imp}.${exp}`)).
import { createHmac, createSecretKey, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';

/** One minted impression: put `clickUrl` (or `clickPath` on your click host) in the ad's link. */
export interface SignedImpression {
  adId: string;
  /** Random (UUID v4): one per showing of the ad; only its first click counts. */
  impressionId: string;
  /** Epoch ms; a click after it is not counted. */
  expiresAt: number;
  sig: string;
  /** The signing key's id, as configured in ADCLICK_SIGNING_KEYS on the click processes. */
  kid: string;
  /** `/c/<adId>?imp=…&exp=…&sig=…&kid=…` */
  clickPath: string;
  /** `clickPath` on `baseUrl` when one was given, else `clickPath`. */
  clickUrl: string;
}

export interface SignerOptions {
  /** Id of the key (1-16 of A-Z a-z 0-9 _ -), the same as in the click processes' ADCLICK_SIGNING_KEYS. */
  keyId: string;
  /** The key's secret, 16+ characters (32+ in production). Read it from your secret store, never from code. */
  secret: string;
  /** Lifetime of an impression (s); at most adclick's ADCLICK_IMPRESSION_TTL_S (default 24 h). */
  ttlSeconds?: number;
  /** The click host, e.g. `https://clicks.example.com`; the click URL is then absolute. */
  baseUrl?: string;
  /** The clock (epoch ms); default Date.now. */
  now?: () => number;
}

export interface ImpressionSigner {
  /** A new impression of `adId` (a decimal id string, as the adclick API returns it). */
  mint(adId: string): SignedImpression;
}

/** adclick's ad ids: decimal, 1 to 18 digits, no leading zero. */
const AD_ID = /^[1-9][0-9]{0,17}$/;
const KEY_ID = /^[A-Za-z0-9_-]{1,16}$/;
export const DEFAULT_TTL_SECONDS = 86_400;

/** The signed text of an impression. */
export const signedText = (adId: string, impressionId: string, expiresAt: number): string =>
  `${adId}.${impressionId}.${expiresAt}`;

/** The signature of an impression: base64url(HMAC-SHA256(secret, `${adId}.${impressionId}.${expiresAt}`)). */
export function signImpression(
  secret: string | KeyObject,
  adId: string,
  impressionId: string,
  expiresAt: number,
): string {
  return createHmac('sha256', secret)
    .update(signedText(adId, impressionId, expiresAt))
    .digest('base64url');
}

/** Whether `sig` is the signature of the impression under `secret` (constant time). Expiry is not checked. */
export function verifyImpression(
  secret: string | KeyObject,
  adId: string,
  impressionId: string,
  expiresAt: number,
  sig: string,
): boolean {
  const expected = Buffer.from(signImpression(secret, adId, impressionId, expiresAt), 'utf8');
  const given = Buffer.from(sig, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The click path of an impression (relative to the click host). */
export function clickPath(i: {
  adId: string;
  impressionId: string;
  expiresAt: number;
  sig: string;
  kid?: string;
}): string {
  const kid = i.kid === undefined ? '' : `&kid=${encodeURIComponent(i.kid)}`;
  return `/c/${i.adId}?imp=${i.impressionId}&exp=${i.expiresAt}&sig=${i.sig}${kid}`;
}

/** A signer for one key. Throws at once on a bad key id, secret, lifetime or base URL. */
export function createImpressionSigner(opts: SignerOptions): ImpressionSigner {
  const { keyId, secret } = opts;
  const ttlSeconds = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  const now = opts.now ?? Date.now;
  if (!KEY_ID.test(keyId)) throw new TypeError('keyId must be 1-16 of A-Z a-z 0-9 _ -');
  if (typeof secret !== 'string' || secret.length < 16) throw new TypeError('secret must be 16+ characters');
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)
    throw new TypeError('ttlSeconds must be a positive integer');
  let base = '';
  if (opts.baseUrl !== undefined) {
    const u = new URL(opts.baseUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('baseUrl must be http(s)');
    base = u.origin + u.pathname.replace(/\/+$/, '');
  }
  // Importing the key once makes each HMAC cheaper than importing a string key per call.
  const key = createSecretKey(Buffer.from(secret, 'utf8'));
  const kidParam = `&kid=${keyId}`; // KEY_ID needs no URL encoding
  const ttlMs = ttlSeconds * 1000;
  return {
    mint(adId: string): SignedImpression {
      if (!AD_ID.test(adId))
        throw new TypeError(`adId must be a decimal id (1-18 digits), got ${JSON.stringify(adId)}`);
      const impressionId = randomUUID();
      const expiresAt = now() + ttlMs;
      const sig = signImpression(key, adId, impressionId, expiresAt);
      const path = `/c/${adId}?imp=${impressionId}&exp=${expiresAt}&sig=${sig}${kidParam}`;
      return { adId, impressionId, expiresAt, sig, kid: keyId, clickPath: path, clickUrl: base + path };
    },
  };
}
