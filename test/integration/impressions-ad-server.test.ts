// An ad server as a real integration, through the real app (the click process in front of the API
// process, real PostgreSQL, Redis and Kafka): an impression key mints impressions (one, or 1,000 a
// request) and can do nothing else; revoking one key leaves the others working; impressions the ad
// server signs itself with the signer module (its own key id) count, and one whose expiry is further
// than the impression lifetime does not.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { configuredRateLimits } from '../../catalogue/rate-limits.js';
import { signingKeys } from '../../ingest/impression.js';
import { createImpressionSigner } from '../../packages/impression-signer/src/index.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  startLocalSystem,
  type CatalogueFixture,
  type LocalSystem,
} from '../support/click.js';

const ADMIN = `Bearer ${config.ADCLICK_ADMIN_KEY}`;
/** The ad server's own signing key, as the operator adds it to ADCLICK_SIGNING_KEYS. */
const AD_SERVER_KEY = { id: 'as1', secret: randomBytes(24).toString('hex') };
const API_KEY = { id: 'k1', secret: randomBytes(24).toString('hex') };

describe('an ad server minting impressions', () => {
  const pool = createPool(2);
  const kafka = createKafka('impressions-ad-server-test');
  const topic = `clicks-test-${randomUUID()}`;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let sys: LocalSystem;
  let cat: CatalogueFixture;
  let other: CatalogueFixture;

  async function call(method: string, path: string, key: string | undefined, body?: unknown) {
    const res = await fetch(sys.url + path, {
      method,
      redirect: 'manual',
      headers: {
        ...(key !== undefined && { authorization: key }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> & { error?: { code: string; message: string } } = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = {};
    }
    return { status: res.status, body: parsed };
  }

  async function newImpressionKey(name: string) {
    const r = await call('POST', '/v1/admin/impression-keys', ADMIN, { name });
    expect(r.status).toBe(201);
    return r.body as { keyId: string; name: string; apiKey: string; revokedAt: null };
  }

  beforeAll(async () => {
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    cat = await createAdvertiserWithAds(pool, 3);
    other = await createAdvertiserWithAds(pool, 1);
    const keys = signingKeys(
      `${API_KEY.id}:${API_KEY.secret},${AD_SERVER_KEY.id}:${AD_SERVER_KEY.secret}`,
      API_KEY.secret,
    );
    sys = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { rateLimitPrefix: `rl-test-${randomUUID()}:`, signingKeys: keys },
      click: { redisDeadlineMs: 2000, signingKeys: keys },
    });
  });
  afterAll(async () => {
    await sys?.close();
    await topicIo?.drop();
    await pool.end();
  });

  it('an impression key mints impressions, one or a batch, and can do nothing else', async () => {
    const key = await newImpressionKey(`ad server ${randomUUID()}`);
    expect(key.apiKey).toMatch(/^ik_[A-Za-z0-9_-]{43}$/);
    const listed = (await call('GET', '/v1/admin/impression-keys', ADMIN)).body.keys as Array<
      Record<string, unknown>
    >;
    const mine = listed.find((k) => k.keyId === key.keyId);
    expect(mine).toMatchObject({ name: key.name, revokedAt: null });
    expect(mine).not.toHaveProperty('apiKey');

    const auth = `Bearer ${key.apiKey}`;
    // Any advertiser's ad: the ad server serves them all.
    const one = await call('POST', '/v1/impressions', auth, { adId: other.ads[0]!.adId });
    expect(one.status).toBe(201);
    expect(String(one.body.clickUrl)).toMatch(
      new RegExp(`^/c/${other.ads[0]!.adId}\\?imp=[0-9a-f-]{36}&exp=\\d+&sig=[\\w-]{43}&kid=k1$`),
    );

    const adIds = Array.from({ length: 1000 }, (_, i) => cat.ads[i % 3]!.adId);
    const batch = await call('POST', '/v1/impressions/batch', auth, { adIds });
    expect(batch.status).toBe(201);
    const impressions = batch.body.impressions as Array<{
      impressionId: string;
      adId: string;
      clickUrl: string;
    }>;
    expect(impressions.map((i) => i.adId)).toEqual(adIds);
    expect(new Set(impressions.map((i) => i.impressionId)).size).toBe(1000);
    // They are real: clicks on two of them redirect and count.
    for (const i of [impressions[0]!, impressions[999]!]) {
      const res = await fetch(sys.url + i.clickUrl, { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(cat.ads.find((a) => a.adId === i.adId)!.redirectUrl);
    }

    // Least privilege: every other route is a 403 for this key.
    const adPath = `/v1/ads/${cat.ads[0]!.adId}`;
    for (const [method, path, body] of [
      ['GET', '/v1/ads', undefined],
      ['GET', adPath, undefined],
      ['PATCH', adPath, { paused: true }],
      ['POST', `${adPath}/archive`, undefined],
      ['POST', '/v1/ads', { redirectUrl: 'https://a.example/', advertiserId: cat.advertiserId }],
      ['POST', '/v1/advertisers', { name: 'x' }],
      ['GET', `${adPath}/clicks`, undefined],
      ['GET', '/v1/advertisers/me/clicks', undefined],
      ['GET', '/v1/admin/hours', undefined],
      ['POST', '/v1/admin/impression-keys', { name: 'more' }],
      ['GET', '/v1/admin/impression-keys', undefined],
    ] as const) {
      const r = await call(method, path, auth, body);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error!.code).toBe('forbidden');
    }
    expect((await call('GET', adPath, ADMIN)).body.status).toBe('active');
    // And an advertiser key cannot make or see impression keys.
    expect(
      (await call('POST', '/v1/admin/impression-keys', `Bearer ${cat.apiKey}`, { name: 'x' })).status,
    ).toBe(403);
  });

  it('revoking one impression key stops it at once and leaves the others working', async () => {
    const [a, b] = [await newImpressionKey('ad server A'), await newImpressionKey('ad server B')];
    const adId = cat.ads[0]!.adId;
    expect((await call('POST', '/v1/impressions', `Bearer ${a.apiKey}`, { adId })).status).toBe(201);
    const revoked = await call('POST', `/v1/admin/impression-keys/${a.keyId}/revoke`, ADMIN);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).toEqual(expect.any(String));
    expect((await call('POST', `/v1/admin/impression-keys/${a.keyId}/revoke`, ADMIN)).body).toEqual(
      revoked.body,
    );
    expect((await call('POST', '/v1/impressions', `Bearer ${a.apiKey}`, { adId })).status).toBe(401);
    expect((await call('POST', '/v1/impressions', `Bearer ${b.apiKey}`, { adId })).status).toBe(201);
    expect((await call('POST', '/v1/admin/impression-keys/999999999999/revoke', ADMIN)).status).toBe(404);
  });

  it('a batch is all or nothing: 1 to 1,000 entries, every ad known (404) and serving (409)', async () => {
    const adId = cat.ads[1]!.adId;
    expect((await call('POST', '/v1/impressions/batch', ADMIN, { adIds: [] })).status).toBe(400);
    expect(
      (await call('POST', '/v1/impressions/batch', ADMIN, { adIds: Array(1001).fill(adId) })).status,
    ).toBe(400);
    expect((await call('POST', '/v1/impressions/batch', ADMIN, { adIds: [adId, 'x'] })).status).toBe(400);
    // 1,000 of the longest ids fit the body limit (a 404: none exists).
    const longest = Array.from({ length: 1000 }, (_, i) => String(900000000000000000n + BigInt(i)));
    const unknown = await call('POST', '/v1/impressions/batch', ADMIN, {
      adIds: [adId, ...longest.slice(1)],
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error!.message).toContain('900000000000000001');
    // An advertiser key mints for its own ads only: another's ad is "unknown" too.
    const mixed = await call('POST', '/v1/impressions/batch', `Bearer ${cat.apiKey}`, {
      adIds: [adId, other.ads[0]!.adId],
    });
    expect(mixed.status).toBe(404);
    expect(mixed.body.error!.message).toContain(other.ads[0]!.adId);
    const own = await call('POST', '/v1/impressions/batch', `Bearer ${cat.apiKey}`, { adIds: [adId, adId] });
    expect(own.status).toBe(201);
  });

  it('impressions the ad server signs itself with the signer module count; an expiry beyond the lifetime does not', async () => {
    const ad = cat.ads[2]!;
    const signer = createImpressionSigner({
      keyId: AD_SERVER_KEY.id,
      secret: AD_SERVER_KEY.secret,
      baseUrl: sys.url,
    });
    const tooLong = createImpressionSigner({
      keyId: AD_SERVER_KEY.id,
      secret: AD_SERVER_KEY.secret,
      baseUrl: sys.url,
      ttlSeconds: config.ADCLICK_IMPRESSION_TTL_S + 3600,
    });
    const unknownKey = createImpressionSigner({
      keyId: 'as9',
      secret: AD_SERVER_KEY.secret,
      baseUrl: sys.url,
    });
    const good = signer.mint(ad.adId);
    const far = tooLong.mint(ad.adId);
    const revoked = unknownKey.mint(ad.adId);
    for (const i of [good, far, revoked]) {
      const res = await fetch(i.clickUrl, { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(ad.redirectUrl);
    }
    const logged = await topicIo.readAll(5, { settleMs: 1500 }); // 2 clicks of the first test, 3 here
    const byImpression = new Map(logged.map((l) => [l.event.eventId, l.event.status]));
    expect(byImpression.get(good.impressionId)).toBe('valid');
    expect(byImpression.get(far.impressionId)).toBe('bad_signature');
    expect(byImpression.get(revoked.impressionId)).toBe('bad_signature');
  });

  it('the default limit of an impression key is above the documented batch target (200,000 impressions/s)', () => {
    const limits = configuredRateLimits();
    expect((limits.minter * 1000) / limits.windowS).toBeGreaterThanOrEqual(200_000);
  });
});
