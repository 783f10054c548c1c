// Every outcome of GET /c/:adId end to end against the real Kafka, PostgreSQL and Redis: the HTTP
// answer, and exactly what reached the (test's own) clicks topic.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickKey, saltOf } from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { clickPath, newImpression, signImpression } from '../../ingest/impression.js';
import { startClickService, type ClickService } from '../../apps/click-service.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  tempSpoolPath,
  type CatalogueFixture,
} from '../support/click.js';

const secret = config.ADCLICK_SIGNING_SECRET;

/**
 * A client process that, told "go" on its stdin, opens `n` connections to the port at once, asks one
 * cheap question on each (a malformed click: 400, nothing logged) and prints the slowest answer's time.
 */
const BURST = `
const net = require('node:net');
const [port, n] = [Number(process.argv[1]), Number(process.argv[2])];
process.stdin.once('data', () => {
  const t0 = Date.now();
  let done = 0, max = 0, failed = 0;
  for (let i = 0; i < n; i++) {
    let settled = false;
    const end = (ok) => {
      if (settled) return;
      settled = true;
      if (ok) max = Math.max(max, Date.now() - t0); else failed++;
      s.destroy();
      if (++done === n) { console.log(JSON.stringify({ max, failed })); process.exit(0); }
    };
    const s = net.connect(Number(port), '127.0.0.1');
    s.setTimeout(15000, () => end(false));
    s.on('connect', () => s.write('GET /c/x HTTP/1.1\\r\\nhost: t\\r\\nconnection: close\\r\\n\\r\\n'));
    s.once('data', () => end(true));
    s.on('error', () => end(false));
  }
});
console.log('ready');
`;

/** Connections this machine's kernel dropped because a listening socket's queue was full, so far. */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const names = lines.find((l) => l.startsWith('TcpExt:'))!.split(' ');
  const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]!.split(' ');
  return Number(values[names.indexOf('ListenOverflows')]);
}
const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: 'manual', ...init });

describe('click outcomes', () => {
  const pool = createPool(2);
  const kafka = createKafka('click-outcomes-test');
  const topic = `clicks-test-${randomUUID()}`;
  let service: ClickService;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let cat: CatalogueFixture;

  beforeAll(async () => {
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    cat = await createAdvertiserWithAds(pool, 2);
    service = await startClickService({
      port: 0,
      topic,
      spoolPath: tempSpoolPath(),
      kafka,
      pool,
      // These tests are about what each click is, not about the dedup deadline (click-degraded
      // covers fail-open): a loaded 2-core CI machine may not answer within the default 50 ms.
      redisDeadlineMs: 2000,
      // One proxy in front, as nginx in docker-compose.yml: a click's ipHash is of the address it sets.
      trustedProxyHops: 1,
    });
  });
  afterAll(async () => {
    await service?.close();
    await topicIo?.drop();
    await pool.end();
  });

  it('valid, duplicate, expired, bad signature: all 302 to the registered URL, each logged once with its status', async () => {
    const ad = cat.ads[0]!;
    const now = Date.now();
    const valid = newImpression(secret, ad.adId, 3600, now);
    const r1 = await get(service.url + clickPath(valid), {
      headers: { 'user-agent': 'vitest-agent', referer: 'https://pub.example/' },
    });
    expect(r1.status).toBe(302);
    expect(r1.headers.get('location')).toBe(ad.redirectUrl);

    const r2 = await get(service.url + clickPath(valid));
    expect(r2.status).toBe(302);
    expect(r2.headers.get('location')).toBe(ad.redirectUrl);

    const expired = newImpression(secret, ad.adId, 1, now - 10_000);
    const r3 = await get(service.url + clickPath(expired));
    expect(r3.status).toBe(302);
    expect(r3.headers.get('location')).toBe(ad.redirectUrl);

    const forged = newImpression('not-the-server-secret!', ad.adId, 3600, now);
    const r4 = await get(service.url + clickPath(forged));
    expect(r4.status).toBe(302);
    expect(r4.headers.get('location')).toBe(ad.redirectUrl);

    const r5 = await get(`${service.url}/c/${ad.adId}`); // no impression at all
    expect(r5.status).toBe(302);
    expect(r5.headers.get('location')).toBe(ad.redirectUrl);

    const logged = await topicIo.readAll(5);
    expect(logged).toHaveLength(5);
    const byStatus = (s: string) => logged.filter((l) => l.event.status === s);
    expect(byStatus('valid')).toHaveLength(1);
    expect(byStatus('duplicate')).toHaveLength(1);
    expect(byStatus('expired')).toHaveLength(1);
    expect(byStatus('bad_signature')).toHaveLength(2);

    const v = byStatus('valid')[0]!;
    expect(v.event).toMatchObject({
      v: 1,
      eventId: valid.impressionId,
      adId: ad.adId,
      advertiserId: cat.advertiserId,
      userAgent: 'vitest-agent',
      referrer: 'https://pub.example/',
      salt: saltOf(valid.impressionId, config.ADCLICK_KEY_SALTS),
    });
    expect(v.event.ipHash).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(v.event.ts).toBeGreaterThanOrEqual(now);
    expect(v.key).toBe(clickKey(ad.adId, v.event.salt));
    // Both clicks of one impression share its key, hence its partition.
    const d = byStatus('duplicate')[0]!;
    expect(d.event.eventId).toBe(valid.impressionId);
    expect(d.partition).toBe(v.partition);
    expect(byStatus('expired')[0]!.event.eventId).toBe(expired.impressionId);
    // The service waited for Redis before it listened: its first click was not failed open.
    const metrics = await (await get(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/^adclick_redis_fail_open_total 0$/m);
  });

  it('unknown ad: 404 and nothing logged; malformed id: 400 and nothing logged', async () => {
    const unknownId = '999999999999999999';
    const imp = newImpression(secret, unknownId, 3600, Date.now());
    const r = await get(service.url + clickPath(imp));
    expect(r.status).toBe(404);
    expect(r.headers.get('location')).toBeNull();
    expect(await r.json()).toMatchObject({ error: { code: 'not_found' } });
    for (const path of ['/c/abc', '/c/0', '/c/-1', '/c/1.5', '/c/12345678901234567890', '/c/', '/c/1/']) {
      const m = await get(service.url + path);
      expect(m.status, path).toBe(400);
      expect(m.headers.get('location'), path).toBeNull();
    }
    const logged = await topicIo.readAll(0, { settleMs: 1500 });
    expect(logged.filter((l) => l.event.adId === unknownId)).toEqual([]);
    expect(logged).toHaveLength(5); // only the five clicks of the first test
  });

  it('redirect injection (extra parameters, encoded URLs, //host paths) never changes Location', async () => {
    const ad = cat.ads[1]!;
    const imp = newImpression(secret, ad.adId, 3600, Date.now());
    const base = `${service.url}/c/${ad.adId}`;
    const attempts = [
      `${clickPath(imp)}&url=https://evil.example/`,
      `${clickPath(imp)}&redirect=%2F%2Fevil.example&location=https://evil.example`,
      `/c/${ad.adId}?next=https%3A%2F%2Fevil.example%2F&imp=${imp.impressionId}&exp=${imp.expiresAt}&sig=${imp.sig}`,
      `/c/${ad.adId}?imp=${imp.impressionId}&exp=${imp.expiresAt}&sig=${imp.sig}%0d%0aLocation:%20https://evil.example`,
    ];
    for (const a of attempts) {
      const r = await get(service.url + a);
      expect(r.status, a).toBe(302);
      expect(r.headers.get('location'), a).toBe(ad.redirectUrl);
    }
    // Paths that try to smuggle a host are not ad ids at all.
    for (const p of [
      '//evil.example',
      '/%2F%2Fevil.example',
      '/https://evil.example',
      '/%2F..%2F..%2F',
      '/1%0d%0aLocation:x',
    ]) {
      const r = await get(base.replace(`/c/${ad.adId}`, `/c${p}`));
      expect(r.status, p).toBe(400);
      expect(r.headers.get('location'), p).toBeNull();
    }
    const logged = (await topicIo.readAll(9)).filter((l) => l.event.adId === ad.adId);
    expect(logged.map((l) => l.event.status).sort()).toEqual([
      'bad_signature',
      'duplicate',
      'duplicate',
      'valid',
    ]);
    expect(signImpression(secret, ad.adId, imp.impressionId, imp.expiresAt)).toBe(imp.sig);
  });

  it('/healthz, /readyz and /metrics answer on the same port', async () => {
    expect((await get(`${service.url}/healthz`)).status).toBe(200);
    const ready = await get(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { kafka: 'ok', postgres: 'ok', redis: 'ok' } });
    const metrics = await (await get(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/adclick_clicks_total\{outcome="valid"\} [1-9]/);
    expect(metrics).toMatch(/adclick_clicks_total\{outcome="unknown_ad"\} [1-9]/);
    expect(metrics).toContain('adclick_click_produce_seconds_bucket');
    // The two waits of a valid click, Redis's check and the log, each with its own histogram.
    expect(metrics).toMatch(/adclick_click_dedup_seconds_count [1-9]/);
    // Every answer of the click route by status, and the whole 302's time (ClickErrors, ClickRedirectSlow).
    expect(metrics).toMatch(/adclick_click_responses_total\{code="302"\} [1-9]/);
    expect(metrics).toMatch(/adclick_click_responses_total\{code="404"\} [1-9]/);
    expect(metrics).toMatch(/adclick_click_redirect_seconds_count [1-9]/);
    expect(metrics).toContain('adclick_spool_depth 0');
    expect(metrics).toContain('adclick_redis_fail_open_total');
  });

  it('a click on an ad created a moment after a 404 for its id is a 302 and is counted', async () => {
    // An explicit id far above the sequence: with other tests creating ads, the next id of the
    // sequence cannot be predicted. What matters is that the click service saw the id unknown first.
    const adId = String(2 ** 52 + Math.floor(Math.random() * 1e9));
    const early = newImpression(secret, adId, 3600, Date.now());
    expect((await get(service.url + clickPath(early))).status).toBe(404);
    const redirectUrl = 'https://advertiser.example/created-after-a-404';
    await pool.query('insert into ads (ad_id, advertiser_id, redirect_url) values ($1, $2, $3)', [
      adId,
      cat.advertiserId,
      redirectUrl,
    ]);
    try {
      const imp = newImpression(secret, adId, 3600, Date.now());
      const r = await get(service.url + clickPath(imp));
      expect(r.status).toBe(302);
      expect(r.headers.get('location')).toBe(redirectUrl);
      const logged = (await topicIo.readAll(10)).filter((l) => l.event.adId === adId);
      expect(logged.map((l) => [l.event.status, l.event.eventId])).toEqual([['valid', imp.impressionId]]);
    } finally {
      await pool.query('delete from ads where ad_id = $1', [adId]);
    }
  });

  it("behind a proxy (one trusted hop), a click's ipHash is of the address the proxy set, not of the proxy", async () => {
    const ad = cat.ads[0]!;
    const click = async (agent: string, xff?: string) => {
      const headers: Record<string, string> = { 'user-agent': agent };
      if (xff !== undefined) headers['x-forwarded-for'] = xff;
      expect((await get(`${service.url}/c/${ad.adId}`, { headers })).status).toBe(302);
    };
    await click('xff-a', '203.0.113.7');
    await click('xff-a-again', '198.51.100.1, 203.0.113.7'); // the client's own entry is not believed
    await click('xff-b', '203.0.113.8');
    await click('xff-none');
    const all = await topicIo.readAll(0, { settleMs: 1500 });
    const hash = (agent: string) => all.find((l) => l.event.userAgent === agent)?.event.ipHash;
    const [a, aAgain, b, none] = ['xff-a', 'xff-a-again', 'xff-b', 'xff-none'].map(hash);
    expect(a).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(aAgain).toBe(a);
    expect(b).not.toBe(a);
    // Without the header, the connection's address (this test's 127.0.0.1), as before.
    expect(none).not.toBe(a);
    expect(none).not.toBe(b);
  });

  it('800 connections arriving at once while the process is busy are all queued by the kernel, none dropped', async () => {
    const port = new URL(service.url).port;
    const child = spawn(process.execPath, ['-e', BURST, port, '800'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe('ready');
    const overflowsBefore = listenOverflows();
    child.stdin!.write('go\n');
    // Busy for 400 ms, as a click process just started or under load: the kernel completes the
    // handshakes and queues them, up to listen's backlog, until this process accepts them. One it
    // could not queue is dropped and waits for the client's next SYN, a second later at best
    // (Node's default backlog, 511: answers took 1.7-2.3 s here, and the kernel counted overflows).
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // the event loop is held on purpose
    }
    const result = JSON.parse(String((await lines.next()).value)) as { max: number; failed: number };
    expect(result.failed).toBe(0);
    expect(listenOverflows() - overflowsBefore).toBe(0);
  });
});
