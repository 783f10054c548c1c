// The ad lifecycle through the real app (the click process in front of the API process, real
// PostgreSQL, Redis and Kafka): PATCH /v1/ads/:adId changes the landing URL, the name and `paused`;
// POST /v1/ads/:adId/archive archives (final). A paused or archived ad gets no new impressions (409),
// and a click on an impression served while it ran still redirects and counts (docs/impressions.md).
//
// The change reaches the click worker through the catalogue's change feed, as in `npm start`: the
// relay the API process runs publishes the outbox to `ad-changes`, which the worker's replica follows
// (that it reaches every worker of a click process within 1 s: catalogue-replica.test.ts).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { startCatalogueRelay, type CatalogueRelay } from '../../catalogue/relay.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  startLocalSystem,
  type CatalogueFixture,
  type LocalSystem,
} from '../support/click.js';
import { sleep } from '../../common/wait.js';

const ADMIN = `Bearer ${config.ADCLICK_ADMIN_KEY}`;

interface Ad {
  adId: string;
  advertiserId: string;
  redirectUrl: string;
  name: string | null;
  status: string;
  updatedAt: string;
}

describe('ad lifecycle', () => {
  const pool = createPool(2);
  const kafka = createKafka('ads-lifecycle-test');
  const topic = `clicks-test-${randomUUID()}`;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let sys: LocalSystem;
  let cat: CatalogueFixture;
  let other: CatalogueFixture;
  // The relay holds one connection for its lock: a pool of its own.
  const relayPool = createPool(2);
  let relay: CatalogueRelay;

  async function call(method: string, path: string, key: string, body?: unknown) {
    const res = await fetch(sys.url + path, {
      method,
      redirect: 'manual',
      headers: { authorization: key, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      location: res.headers.get('location'),
      body: (text ? JSON.parse(text) : {}) as Record<string, unknown> & { error?: { code: string } },
    };
  }
  const mint = async (adId: string) => call('POST', '/v1/impressions', ADMIN, { adId });

  beforeAll(async () => {
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    cat = await createAdvertiserWithAds(pool, 3);
    other = await createAdvertiserWithAds(pool, 1);
    relay = startCatalogueRelay({ pool: relayPool, kafka, topic: config.ADCLICK_AD_CHANGES_TOPIC });
    sys = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { rateLimitPrefix: `rl-test-${randomUUID()}:` },
      click: { redisDeadlineMs: 2000 },
    });
  });
  afterAll(async () => {
    await sys?.close();
    await relay?.stop();
    await topicIo?.drop();
    await pool.end();
    await relayPool.end();
  });

  it('PATCH changes the landing URL, the name and paused; the owner or the admin only', async () => {
    const key = `Bearer ${cat.apiKey}`;
    const ad = cat.ads[0]!;
    const before = (await call('GET', `/v1/ads/${ad.adId}`, key)).body as unknown as Ad;
    expect(before.status).toBe('active');

    const changed = await call('PATCH', `/v1/ads/${ad.adId}`, key, {
      redirectUrl: 'https://advertiser.example/new-landing?x=1',
      name: 'renamed',
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({
      adId: ad.adId,
      redirectUrl: 'https://advertiser.example/new-landing?x=1',
      name: 'renamed',
      status: 'active',
    });
    expect(Date.parse(String(changed.body.updatedAt))).toBeGreaterThanOrEqual(Date.parse(before.updatedAt));
    expect((await call('GET', `/v1/ads/${ad.adId}`, key)).body).toMatchObject({ name: 'renamed' });

    // The click worker redirects to the new URL once the change has reached its replica (well
    // within 10 s: the feed's own bound of 1 s is measured in catalogue-replica.test.ts). HEAD asks
    // without clicking; then one click.
    const imp = await mint(ad.adId);
    const clickUrl = sys.url + String(imp.body.clickUrl);
    for (const until = Date.now() + 10_000; Date.now() < until;) {
      const head = await fetch(clickUrl, { method: 'HEAD', redirect: 'manual' });
      if (head.headers.get('location') === 'https://advertiser.example/new-landing?x=1') break;
      await sleep(50);
    }
    const click = await fetch(clickUrl, { redirect: 'manual' });
    expect(click.status).toBe(302);
    expect(click.headers.get('location')).toBe('https://advertiser.example/new-landing?x=1');

    // paused: true / false; name: null clears it; {} changes nothing.
    expect((await call('PATCH', `/v1/ads/${ad.adId}`, key, { paused: true })).body).toMatchObject({
      status: 'paused',
      name: 'renamed',
    });
    expect(
      (await call('PATCH', `/v1/ads/${ad.adId}`, ADMIN, { paused: false, name: null })).body,
    ).toMatchObject({
      status: 'active',
      name: null,
    });
    expect((await call('PATCH', `/v1/ads/${ad.adId}`, key, {})).body).toMatchObject({
      status: 'active',
      name: null,
    });

    // Another advertiser: 404, no hint; bad input: 400, nothing changed.
    const theirs = await call('PATCH', `/v1/ads/${ad.adId}`, `Bearer ${other.apiKey}`, { paused: true });
    expect(theirs.status).toBe(404);
    for (const body of [
      { redirectUrl: 'javascript:alert(1)' },
      { redirectUrl: '' },
      { paused: 'yes' },
      { status: 'x' },
    ])
      expect((await call('PATCH', `/v1/ads/${ad.adId}`, key, body)).status, JSON.stringify(body)).toBe(400);
    expect((await call('GET', `/v1/ads/${ad.adId}`, key)).body).toMatchObject({ status: 'active' });
  });

  it('a paused ad gets no new impressions (409); resumed, it does again', async () => {
    const ad = cat.ads[1]!;
    expect((await call('PATCH', `/v1/ads/${ad.adId}`, ADMIN, { paused: true })).status).toBe(200);
    const refused = await mint(ad.adId);
    expect(refused.status).toBe(409);
    expect(refused.body.error!.code).toBe('ad_not_serving');
    const batch = await call('POST', '/v1/impressions/batch', ADMIN, { adIds: [cat.ads[2]!.adId, ad.adId] });
    expect(batch.status).toBe(409);
    expect(JSON.stringify(batch.body)).toContain(ad.adId);
    expect((await call('PATCH', `/v1/ads/${ad.adId}`, ADMIN, { paused: false })).status).toBe(200);
    expect((await mint(ad.adId)).status).toBe(201);
  });

  it('archive is final: no impressions, no changes (409), archiving again is the same; the ad is still listed', async () => {
    const key = `Bearer ${cat.apiKey}`;
    const ad = cat.ads[2]!;
    const archived = await call('POST', `/v1/ads/${ad.adId}/archive`, key);
    expect(archived.status).toBe(200);
    expect(archived.body.status).toBe('archived');
    expect((await call('POST', `/v1/ads/${ad.adId}/archive`, key)).body).toEqual(archived.body);
    const change = await call('PATCH', `/v1/ads/${ad.adId}`, key, { paused: false });
    expect(change.status).toBe(409);
    expect(change.body.error!.code).toBe('ad_archived');
    expect((await mint(ad.adId)).status).toBe(409);
    expect((await call('POST', `/v1/ads/${ad.adId}/archive`, `Bearer ${other.apiKey}`)).status).toBe(404);
    const listed = (await call('GET', '/v1/ads', key)).body.ads as Ad[];
    expect(listed.find((a) => a.adId === ad.adId)?.status).toBe('archived');
  });

  it('a click on a paused or archived ad redirects to its URL and counts when its impression is valid', async () => {
    const { ads } = await createAdvertiserWithAds(pool, 2);
    const [paused, archived] = [ads[0]!, ads[1]!];
    const served = [await mint(paused.adId), await mint(archived.adId)];
    expect(served.map((s) => s.status)).toEqual([201, 201]);
    expect((await call('PATCH', `/v1/ads/${paused.adId}`, ADMIN, { paused: true })).status).toBe(200);
    expect((await call('POST', `/v1/ads/${archived.adId}/archive`, ADMIN)).status).toBe(200);

    for (const [i, ad] of [paused, archived].entries()) {
      const res = await fetch(sys.url + String(served[i]!.body.clickUrl), { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(ad.redirectUrl);
    }
    // With no impression at all the person is redirected too, and nothing counts.
    const bare = await fetch(`${sys.url}/c/${archived.adId}`, { redirect: 'manual' });
    expect(bare.status).toBe(302);

    // The lifecycle tests above clicked once too: read everything, keep these two ads' events.
    const logged = await topicIo.readAll(4);
    const mine = logged.filter((l) => l.event.adId === paused.adId || l.event.adId === archived.adId);
    expect(mine.map((l) => [l.event.adId, l.event.status]).sort()).toEqual(
      [
        [paused.adId, 'valid'],
        [archived.adId, 'valid'],
        [archived.adId, 'bad_signature'],
      ].sort(),
    );
  });
});
