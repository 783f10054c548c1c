import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { saltOf } from '../common/click-event.js';
import {
  checkImpression,
  clickPath,
  IMPRESSION_EXPIRY_SKEW_MS,
  impressionMinter,
  newImpression,
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
