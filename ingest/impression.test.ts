import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { saltOf } from '../common/click-event.js';
import {
  checkImpression,
  clickPath,
  IMPRESSION_EXPIRY_SKEW_MS,
  impressionMinter,
  newImpression,
  parseClickQuery,
  signImpression,
  signingKeys,
} from './impression.js';

const secret = 'test-secret-0123456789';
const now = Date.UTC(2026, 10, 27, 10, 0, 0);

describe('impression signing', () => {
  it('a fresh impression checks ok and its click path carries imp, exp and sig', () => {
    const i = newImpression(secret, '42', 3600, now);
    expect(i.expiresAt).toBe(now + 3_600_000);
    expect(checkImpression(secret, '42', i.impressionId, String(i.expiresAt), i.sig, now)).toBe('ok');
    expect(clickPath(i)).toBe(`/c/42?imp=${i.impressionId}&exp=${i.expiresAt}&sig=${i.sig}`);
  });

  it("the catalogue's minter signs with the keyring's current key and names it in the click path", () => {
    const keys = signingKeys('k2:second-secret-0123456789,k1:first-secret-0123456789', secret);
    const minted = impressionMinter(keys, 600)('77', now);
    expect(minted.expiresAt).toBe(now + 600_000);
    const url = new URL(minted.clickPath, 'http://click.example');
    expect(url.pathname).toBe('/c/77');
    expect(url.searchParams.get('imp')).toBe(minted.impressionId);
    expect(url.searchParams.get('kid')).toBe('k2');
    const q = (name: string) => url.searchParams.get(name);
    expect(checkImpression(keys, '77', q('imp'), q('exp'), q('sig'), now, q('kid'))).toBe('ok');
    expect(checkImpression(keys, '78', q('imp'), q('exp'), q('sig'), now, q('kid'))).toBe('bad_signature');
  });

  it('the signature binds the ad, the impression and the expiry', () => {
    const i = newImpression(secret, '42', 3600, now);
    const exp = String(i.expiresAt);
    expect(checkImpression(secret, '43', i.impressionId, exp, i.sig, now)).toBe('bad_signature');
    const other = newImpression(secret, '42', 3600, now);
    expect(checkImpression(secret, '42', other.impressionId, exp, i.sig, now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', i.impressionId, String(i.expiresAt + 1), i.sig, now)).toBe(
      'bad_signature',
    );
    expect(checkImpression('another-secret-0123456', '42', i.impressionId, exp, i.sig, now)).toBe(
      'bad_signature',
    );
  });

  it('missing, malformed or truncated parameters are bad signatures, not errors', () => {
    const i = newImpression(secret, '42', 3600, now);
    const exp = String(i.expiresAt);
    expect(checkImpression(secret, '42', null, exp, i.sig, now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', i.impressionId, null, i.sig, now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', i.impressionId, exp, null, now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', i.impressionId, exp, i.sig.slice(1), now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', i.impressionId, '1e20', i.sig, now)).toBe('bad_signature');
    expect(checkImpression(secret, '42', 'not-a-uuid', exp, i.sig, now)).toBe('bad_signature');
  });

  it('a well-signed impression past its expiry is expired, exactly at the boundary too', () => {
    const i = newImpression(secret, '42', 60, now);
    const exp = String(i.expiresAt);
    expect(checkImpression(secret, '42', i.impressionId, exp, i.sig, i.expiresAt - 1)).toBe('ok');
    expect(checkImpression(secret, '42', i.impressionId, exp, i.sig, i.expiresAt)).toBe('expired');
    expect(checkImpression(secret, '42', i.impressionId, exp, i.sig, i.expiresAt + 86_400_000)).toBe(
      'expired',
    );
  });

  it('signatures are deterministic base64url', () => {
    const a = signImpression(secret, '1', '00000000-0000-4000-8000-000000000000', 1);
    expect(a).toBe(signImpression(secret, '1', '00000000-0000-4000-8000-000000000000', 1));
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

// signImpression computes HMAC-SHA256 from each key's padded blocks (not createHmac): it must equal
// Node's HMAC for every key length around the block size (a key over 64 bytes is hashed first) and
// for messages on both sides of its scratch buffer, multi-byte characters included.
describe('the padded-block HMAC equals createHmac', () => {
  const keys = ['k'.repeat(16), 'x'.repeat(63), 'y'.repeat(64), 'z'.repeat(65), 'ключ-'.repeat(20)];
  const ids = ['00000000-0000-4000-8000-000000000000', 'é'.repeat(40), 'a'.repeat(300), ''];
  const cases = keys.flatMap((key) => ids.map((id) => ({ key, id })));
  it.each(cases)('key of $key.length chars, impression of $id.length chars', ({ key, id }) => {
    const message = `123456789.${id}.1765000000000`;
    const want = createHmac('sha256', key).update(message).digest('base64url');
    expect(signImpression(key, '123456789', id, 1765000000000)).toBe(want);
    // Twice: the scratch buffer of the key is reused, a longer message before must not leak into it.
    expect(signImpression(key, '123456789', id, 1765000000000)).toBe(want);
  });

  it('a shorter message after a longer one signs only itself', () => {
    signImpression(secret, '1', 'a'.repeat(80), 1);
    const want = createHmac('sha256', secret).update('1.b.2').digest('base64url');
    expect(signImpression(secret, '1', 'b', 2)).toBe(want);
  });
});

describe('saltOf', () => {
  it('is the first 4 bytes of the SHA-1 of the impression id, modulo the salts', () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'f'.repeat(36), 'é']) {
      const want = createHash('sha1').update(id).digest().readUInt32BE(0) % 7;
      expect(saltOf(id, 7)).toBe(want);
    }
    expect(saltOf('anything', 1)).toBe(0);
  });
});

// The scheme's test vectors (docs/impressions.md), shared with the signer module ad servers use.
const { vectors } = JSON.parse(
  readFileSync(new URL('../packages/impression-signer/test-vectors.json', import.meta.url), 'utf8'),
) as {
  vectors: Array<{
    keyId: string;
    secret: string;
    adId: string;
    impressionId: string;
    expiresAt: number;
    sig: string;
    clickPath: string;
  }>;
};

describe('the click path and the signer module agree (test vectors)', () => {
  it.each(vectors)('vector $adId/$keyId signs and checks the same', (v) => {
    expect(signImpression(v.secret, v.adId, v.impressionId, v.expiresAt)).toBe(v.sig);
    const keys = signingKeys(`${v.keyId}:${v.secret}`, 'unnamed-secret-0123456789');
    const url = new URL(v.clickPath, 'http://click.test');
    const q = (name: string) => url.searchParams.get(name);
    const lifetime = 3_600_000;
    const justBefore = v.expiresAt - lifetime;
    expect(checkImpression(keys, v.adId, q('imp'), q('exp'), q('sig'), justBefore, q('kid'), lifetime)).toBe(
      'ok',
    );
    expect(
      clickPath({
        adId: v.adId,
        impressionId: v.impressionId,
        expiresAt: v.expiresAt,
        sig: v.sig,
        kid: v.keyId,
      }),
    ).toBe(v.clickPath);
  });
});

describe('an expiry further away than the impression lifetime', () => {
  it('is a bad signature beyond lifetime + skew, even when well signed', () => {
    const lifetime = 24 * 3_600_000 + IMPRESSION_EXPIRY_SKEW_MS;
    const i = newImpression(secret, '42', 24 * 3600, now);
    const exp = String(i.expiresAt);
    expect(checkImpression(secret, '42', i.impressionId, exp, i.sig, now, null, lifetime)).toBe('ok');
    const far = now + lifetime + 1;
    const sig = signImpression(secret, '42', i.impressionId, far);
    expect(checkImpression(secret, '42', i.impressionId, String(far), sig, now, null, lifetime)).toBe(
      'bad_signature',
    );
    // A year-long expiry, signed by an ad server with a real key: refused by default (24 h + 1 min).
    const year = now + 365 * 86_400_000;
    const yearSig = signImpression(secret, '42', i.impressionId, year);
    expect(checkImpression(secret, '42', i.impressionId, String(year), yearSig, now)).toBe('bad_signature');
    // Within the skew it still counts.
    const skewed = now + lifetime;
    const skewedSig = signImpression(secret, '42', i.impressionId, skewed);
    expect(
      checkImpression(secret, '42', i.impressionId, String(skewed), skewedSig, now, null, lifetime),
    ).toBe('ok');
  });
});

describe('salting', () => {
  it('every click of one impression gets the same salt, and impressions spread over all salts', () => {
    const counts = new Array<number>(8).fill(0);
    for (let n = 0; n < 4000; n++) {
      const imp = newImpression(secret, '7', 60, now).impressionId;
      const s = saltOf(imp, 8);
      expect(saltOf(imp, 8)).toBe(s);
      counts[s]! += 1;
    }
    for (const c of counts) expect(c).toBeGreaterThan(350);
    expect(saltOf('anything', 1)).toBe(0);
  });
});

describe('parseClickQuery reads a query as URLSearchParams does', () => {
  const queries = [
    '',
    'imp=a&exp=1&sig=s',
    'imp=a&exp=1&sig=s&kid=k2',
    'sig=s&imp=a&exp=1',
    'imp=a&imp=b&exp=1&exp=2',
    'imp&exp=&sig==x&kid=a=b',
    '&&imp=a&&exp=1&',
    'x=1&impx=2&im=3&imp=4',
    'imp=%41&exp=1',
    'imp=a+b&sig=c%2Bd',
    'imp=%zz&kid=%',
    '=&=x&imp=',
    'IMP=a&Sig=b',
  ];
  it.each(queries)('%s', (query) => {
    const params = new URLSearchParams(query);
    expect(parseClickQuery(query)).toEqual({
      imp: params.get('imp'),
      exp: params.get('exp'),
      sig: params.get('sig'),
      kid: params.get('kid'),
    });
  });

  it('agrees on random queries over a small alphabet', () => {
    const alphabet = ['imp', 'exp', 'sig', 'kid', '=', '&', 'a', '1', '%', '+', '%41', 'é'];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      let query = '';
      for (let n = next() % 12; n > 0; n--) query += alphabet[next() % alphabet.length];
      const params = new URLSearchParams(query);
      expect(parseClickQuery(query), query).toEqual({
        imp: params.get('imp'),
        exp: params.get('exp'),
        sig: params.get('sig'),
        kid: params.get('kid'),
      });
    }
  });
});
