// The signer against the scheme's test vectors (test-vectors.json, computed with Python's hmac, not
// with this code), plus what the vectors cannot show: random ids, the expiry, refused inputs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clickPath, createImpressionSigner, signImpression, verifyImpression } from './index.js';

interface Vector {
  keyId: string;
  secret: string;
  adId: string;
  impressionId: string;
  expiresAt: number;
  sig: string;
  clickPath: string;
}
const { vectors } = JSON.parse(readFileSync(new URL('../test-vectors.json', import.meta.url), 'utf8')) as {
  vectors: Vector[];
};

describe('impression signer', () => {
  it.each(vectors)('signs vector $adId/$keyId as the scheme says', (v) => {
    expect(signImpression(v.secret, v.adId, v.impressionId, v.expiresAt)).toBe(v.sig);
    expect(verifyImpression(v.secret, v.adId, v.impressionId, v.expiresAt, v.sig)).toBe(true);
    expect(verifyImpression(v.secret, v.adId, v.impressionId, v.expiresAt + 1, v.sig)).toBe(false);
    expect(clickPath({ ...v, kid: v.keyId })).toBe(v.clickPath);
  });

  it('a signer mints the vector when its clock and id are the vector’s', () => {
    const v = vectors[0]!;
    const ttl = 3600;
    const signer = createImpressionSigner({
      keyId: v.keyId,
      secret: v.secret,
      ttlSeconds: ttl,
      now: () => v.expiresAt - ttl * 1000,
    });
    const i = signer.mint(v.adId);
    expect(i.expiresAt).toBe(v.expiresAt);
    expect(i.kid).toBe(v.keyId);
    // The id is random, so the signature is checked by recomputing it over this id.
    expect(verifyImpression(v.secret, v.adId, i.impressionId, i.expiresAt, i.sig)).toBe(true);
    expect(i.clickPath).toBe(
      `/c/${v.adId}?imp=${i.impressionId}&exp=${v.expiresAt}&sig=${i.sig}&kid=${v.keyId}`,
    );
  });

  it('impression ids are random UUID v4s, never repeated', () => {
    const signer = createImpressionSigner({ keyId: 'as1', secret: 'x'.repeat(32) });
    const ids = new Set<string>();
    for (let n = 0; n < 10_000; n++) ids.add(signer.mint('7').impressionId);
    expect(ids.size).toBe(10_000);
    for (const id of [...ids].slice(0, 100))
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('the default lifetime is 24 h; a base URL makes the click URL absolute', () => {
    const signer = createImpressionSigner({
      keyId: 'as1',
      secret: 'x'.repeat(32),
      baseUrl: 'https://clicks.example.com/',
      now: () => 1_000,
    });
    const i = signer.mint('12');
    expect(i.expiresAt).toBe(1_000 + 86_400_000);
    expect(i.clickUrl).toBe(`https://clicks.example.com${i.clickPath}`);
  });

  it('refuses a bad ad id, key id, secret, lifetime or base URL', () => {
    const ok = { keyId: 'as1', secret: 'x'.repeat(32) };
    const signer = createImpressionSigner(ok);
    for (const adId of ['', '0', '01', 'abc', '1'.repeat(19), '1/../2'])
      expect(() => signer.mint(adId)).toThrow(TypeError);
    expect(() => createImpressionSigner({ ...ok, keyId: 'a:b' })).toThrow(/keyId/);
    expect(() => createImpressionSigner({ ...ok, keyId: 'x'.repeat(17) })).toThrow(/keyId/);
    expect(() => createImpressionSigner({ ...ok, secret: 'short' })).toThrow(/secret/);
    expect(() => createImpressionSigner({ ...ok, ttlSeconds: 0 })).toThrow(/ttlSeconds/);
    expect(() => createImpressionSigner({ ...ok, baseUrl: 'ftp://x' })).toThrow(/baseUrl/);
  });
});
