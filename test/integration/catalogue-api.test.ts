// The catalogue and impressions API (API.md) against the real PostgreSQL: keys, ownership, paging,
// validation, and an impression's click URL working end to end through the same base URL (the click
// process in front of the API process, as `npm start` runs them).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { clickTopic, startLocalSystem, type LocalSystem } from '../support/click.js';

const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('catalogue API', () => {
  const pool = createPool(2);
  const kafka = createKafka('catalogue-api-test');
  const topic = `clicks-test-${randomUUID()}`;
  let service: LocalSystem;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;

  async function call(method: string, path: string, headers: Record<string, string>, body?: unknown) {
    const r = await fetch(service.url + path, {
      method,
      redirect: 'manual',
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    return {
      status: r.status,
      body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & {
        error?: { code: string; message: string };
      },
    };
  }

  beforeAll(async () => {
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    service = await startLocalSystem({ topic, kafka, pool });
  });
  afterAll(async () => {
    await service?.close();
    await topicIo?.drop();
    await pool.end();
  });

  it('admin creates advertisers; the key is returned once and only its hash is stored', async () => {
    const r = await call('POST', '/v1/advertisers', admin, { name: 'Acme' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'Acme' });
    expect(r.body.advertiserId).toMatch(/^[1-9][0-9]*$/);
    expect(r.body.apiKey).toMatch(/^ak_[A-Za-z0-9_-]{43}$/);
    const stored = await pool.query<{ api_key_hash: string }>(
      'select api_key_hash from advertisers where advertiser_id = $1',
      [r.body.advertiserId],
    );
    expect(stored.rows[0]!.api_key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.rows[0]!.api_key_hash).not.toContain(String(r.body.apiKey));
  });

  it('missing or unknown keys are 401, an advertiser key on an admin route is 403, bad bodies are 400', async () => {
    expect((await call('POST', '/v1/advertisers', {}, { name: 'x' })).status).toBe(401);
    expect((await call('GET', '/v1/ads', bearer('ak_nope'))).status).toBe(401);
    const adv = (await call('POST', '/v1/advertisers', admin, { name: 'B' })).body;
    expect((await call('POST', '/v1/advertisers', bearer(String(adv.apiKey)), { name: 'x' })).status).toBe(
      403,
    );
    const bad = await call('POST', '/v1/advertisers', admin, { name: '' });
    expect(bad.status).toBe(400);
    expect(bad.body.error!.code).toBe('bad_request');
    expect((await call('POST', '/v1/advertisers', admin, '{not json')).body.error!.code).toBe('bad_json');
    for (const redirectUrl of ['ftp://x.example/', 'javascript:alert(1)', '/relative', 'not a url', 42]) {
      const r = await call('POST', '/v1/ads', bearer(String(adv.apiKey)), { redirectUrl });
      expect(r.status, String(redirectUrl)).toBe(400);
      expect(r.body.error!.message).toContain('redirectUrl');
    }
  });

  it('ads: created by their advertiser (or admin for one), read by owner or admin, 404 to others, paged', async () => {
    const a = (await call('POST', '/v1/advertisers', admin, { name: 'A' })).body;
    const b = (await call('POST', '/v1/advertisers', admin, { name: 'B' })).body;
    const keyA = bearer(String(a.apiKey));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await call('POST', '/v1/ads', keyA, {
        redirectUrl: `https://a.example/${i}`,
        name: `ad ${i}`,
      });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({
        advertiserId: a.advertiserId,
        redirectUrl: `https://a.example/${i}`,
        name: `ad ${i}`,
      });
      ids.push(String(r.body.adId));
    }
    const byAdmin = await call('POST', '/v1/ads', admin, {
      redirectUrl: 'https://a.example/admin',
      advertiserId: a.advertiserId,
    });
    expect(byAdmin.status).toBe(201);
    ids.push(String(byAdmin.body.adId));
    expect((await call('POST', '/v1/ads', admin, { redirectUrl: 'https://a.example/' })).status).toBe(403);
    expect(
      (
        await call('POST', '/v1/ads', admin, {
          redirectUrl: 'https://a.example/',
          advertiserId: '999999999999999',
        })
      ).status,
    ).toBe(404);

    expect((await call('GET', `/v1/ads/${ids[0]}`, keyA)).body).toMatchObject({
      adId: ids[0],
      advertiserId: a.advertiserId,
    });
    expect((await call('GET', `/v1/ads/${ids[0]}`, admin)).status).toBe(200);
    const other = await call('GET', `/v1/ads/${ids[0]}`, bearer(String(b.apiKey)));
    expect(other.status).toBe(404);
    expect(other.body.error!.code).toBe('not_found');
    expect((await call('GET', '/v1/ads/abc', keyA)).status).toBe(400);

    const page1 = await call('GET', '/v1/ads?limit=4', keyA);
    expect((page1.body.ads as Array<{ adId: string }>).map((x) => x.adId)).toEqual(ids.slice(0, 4));
    const page2 = await call('GET', `/v1/ads?limit=4&cursor=${String(page1.body.nextCursor)}`, keyA);
    expect((page2.body.ads as Array<{ adId: string }>).map((x) => x.adId)).toEqual(ids.slice(4));
    expect(page2.body.nextCursor).toBeNull();
    expect((await call('GET', '/v1/ads', bearer(String(b.apiKey)))).body.ads).toEqual([]);
    expect((await call('GET', '/v1/ads?limit=0', keyA)).status).toBe(400);
  });

  it('impressions: signed click URLs for the owner or admin; the URL redirects to the ad', async () => {
    const a = (await call('POST', '/v1/advertisers', admin, { name: 'Imp' })).body;
    const b = (await call('POST', '/v1/advertisers', admin, { name: 'Other' })).body;
    const ad = (
      await call('POST', '/v1/ads', bearer(String(a.apiKey)), { redirectUrl: 'https://imp.example/landing' })
    ).body;
    const before = Date.now();
    const imp = await call('POST', '/v1/impressions', bearer(String(a.apiKey)), { adId: ad.adId });
    expect(imp.status).toBe(201);
    expect(imp.body.adId).toBe(ad.adId);
    const expiresAt = Date.parse(String(imp.body.expiresAt));
    expect(expiresAt).toBeGreaterThanOrEqual(before + config.ADCLICK_IMPRESSION_TTL_S * 1000 - 1000);
    expect(imp.body.clickUrl).toBe(
      `/c/${String(ad.adId)}?imp=${String(imp.body.impressionId)}&exp=${expiresAt}&sig=${new URL(String(imp.body.clickUrl), 'http://x').searchParams.get('sig')}`,
    );
    expect((await call('POST', '/v1/impressions', admin, { adId: ad.adId })).status).toBe(201);
    expect((await call('POST', '/v1/impressions', bearer(String(b.apiKey)), { adId: ad.adId })).status).toBe(
      404,
    );
    expect((await call('POST', '/v1/impressions', admin, { adId: 'x' })).status).toBe(400);

    const click = await fetch(service.url + String(imp.body.clickUrl), { redirect: 'manual' });
    expect(click.status).toBe(302);
    expect(click.headers.get('location')).toBe('https://imp.example/landing');
    const logged = await topicIo.readAll(1);
    expect(logged.map((l) => [l.event.eventId, l.event.status])).toEqual([[imp.body.impressionId, 'valid']]);
  });
});
