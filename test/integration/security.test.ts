// Safe to expose, through the real app (the click process in front of the API process, as `npm start`
// runs them, against the real Kafka, PostgreSQL, Redis and Pinot): every error status the app answers
// has the error body with a request id and leaks no host, port, SQL or stack trace (also with
// PostgreSQL and Pinot failing); 405 for a method a path does not take; rate limits that hold across
// replicas, with Retry-After; security headers; signing-key rotation; HEAD is not a click; the
// OpenAPI document lists every path of the contract.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRoutes, createApiApp, listen } from '../../apps/api.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createRedis } from '../../common/redis.js';
import { clickPath, newImpression, signingKeys } from '../../ingest/impression.js';
import { startClickService } from '../../apps/click-service.js';
import { PinotSpeedStore } from '../../speed-layer/pinot-speed-store.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  gatedKafka,
  startLocalSystem,
  tempSpoolPath,
  type CatalogueFixture,
  type LocalSystem,
} from '../support/click.js';
import { deadSpeedStore } from './serving-fixtures.js';

const ADMIN = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const newSecret = (): string => randomBytes(24).toString('hex');
// Every request of this file comes from 127.0.0.1: room for the 401s the tests make on purpose.
const roomy = { authFailures: 1000 };

// What no error body may contain: our hosts and ports, SQL, stack frames, low-level error codes.
const PORTS = [5432, 6379, 9092, 9000, 9002, 8099, 7233, 8081, 1];
const LEAK = new RegExp(
  [
    '127\\.0\\.0\\.1',
    'localhost',
    ...PORTS.map((p) => `[a-z0-9.\\]]:${p}\\b`),
    '\\bselect\\b',
    '\\binsert\\b',
    '\\brelation\\b',
    '\\bwhere\\b',
    '\\n\\s+at ',
    '\\.ts:\\d+',
    'ECONN',
    'ENOTFOUND',
    'BrokerResource',
    'Exception',
  ].join('|'),
  'i',
);

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: { error?: { code: string; message: string; requestId: string } } & Record<string, unknown>;
}

async function call(url: string, init: RequestInit & { json?: unknown } = {}): Promise<Answer> {
  const { json, ...rest } = init;
  const res = await fetch(url, {
    redirect: 'manual',
    ...rest,
    ...(json !== undefined && {
      body: typeof json === 'string' ? json : JSON.stringify(json),
      headers: { 'content-type': 'application/json', ...(rest.headers as Record<string, string>) },
    }),
  });
  const text = await res.text();
  let body: Answer['body'] = {};
  try {
    body = text ? (JSON.parse(text) as Answer['body']) : {};
  } catch {
    body = {};
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** The error contract: status, code, a message, a request id echoed in X-Request-Id, no internals. */
function expectError(a: Answer, status: number, code?: string): void {
  expect(a.status, a.text).toBe(status);
  expect(a.body.error, a.text).toMatchObject({ message: expect.any(String), requestId: expect.any(String) });
  if (code) expect(a.body.error!.code).toBe(code);
  expect(a.headers.get('x-request-id')).toBe(a.body.error!.requestId);
  expect(a.text).not.toMatch(LEAK);
}

describe('safe to expose', () => {
  const pool = createPool(4);
  const kafka = createKafka('security-test');
  const topic = `clicks-test-${randomUUID()}`;
  const prefix = `rl-test-${randomUUID()}:`;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let sys: LocalSystem;
  let cat: CatalogueFixture;
  let other: CatalogueFixture;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    cat = await createAdvertiserWithAds(pool, 2);
    other = await createAdvertiserWithAds(pool, 1);
    sys = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { rateLimitPrefix: prefix, rateLimits: roomy },
      click: { redisDeadlineMs: 2000 },
    });
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await sys?.close();
    await topicIo?.drop();
    await pool.end();
  });

  describe('every error status through the real app', () => {
    it('400: a bad body, a bad query, a malformed ad id in a click', async () => {
      expectError(
        await call(`${sys.url}/v1/ads`, {
          method: 'POST',
          headers: bearer(cat.apiKey),
          json: { redirectUrl: 'javascript:alert(1)' },
        }),
        400,
      );
      expectError(
        await call(`${sys.url}/v1/ads`, { method: 'POST', headers: bearer(cat.apiKey), json: '{"nope' }),
        400,
        'bad_json',
      );
      const ad = cat.ads[0]!.adId;
      expectError(
        await call(`${sys.url}/v1/ads/${ad}/clicks?granularity=week`, { headers: bearer(cat.apiKey) }),
        400,
        'invalid_granularity',
      );
      expectError(
        await call(`${sys.url}/v1/ads/${ad}/clicks?from=yesterday`, { headers: bearer(cat.apiKey) }),
        400,
        'invalid_time',
      );
      expectError(await call(`${sys.url}/c/12ab`), 400, 'bad_ad_id');
    });

    it('401 on every route that needs a key, without one and with an unknown one', async () => {
      const keyed = apiRoutes.filter((r) => r.security && r.security.length > 0);
      expect(keyed.length).toBeGreaterThanOrEqual(10);
      for (const r of keyed) {
        const path = r.path.replace(/\{[^}]+\}/g, '1');
        for (const headers of [{}, bearer('ak_not-a-key')]) {
          const a = await call(`${sys.url}${path}`, {
            method: r.method.toUpperCase(),
            headers,
            ...(r.method === 'post' && { json: {} }),
          });
          expectError(a, 401, 'unauthorized');
        }
      }
    });

    it('403: an advertiser key on each admin route', async () => {
      for (const [method, path] of [
        ['POST', '/v1/advertisers'],
        ['GET', '/v1/admin/hours'],
        ['GET', '/v1/admin/reconciliation?date=2026-01-01'],
        ['POST', '/v1/admin/backfills'],
      ] as const)
        expectError(
          await call(`${sys.url}${path}`, {
            method,
            headers: bearer(cat.apiKey),
            ...(method === 'POST' && { json: { name: 'x' } }),
          }),
          403,
          'forbidden',
        );
    });

    it('404: an unknown route, another advertiser’s ad, an unknown ad to click', async () => {
      expectError(
        await call(`${sys.url}/v1/nothing-here`, { headers: bearer(cat.apiKey) }),
        404,
        'not_found',
      );
      expectError(await call(`${sys.url}/nothing-here`), 404, 'not_found');
      expectError(
        await call(`${sys.url}/v1/ads/${other.ads[0]!.adId}`, { headers: bearer(cat.apiKey) }),
        404,
        'not_found',
      );
      expectError(await call(`${sys.url}/c/999999999999999999`), 404, 'not_found');
    });

    it('405 with Allow for a method a path does not take (API and click path)', async () => {
      const ad = cat.ads[0]!.adId;
      for (const [method, path, allow] of [
        ['DELETE', `/v1/ads/${ad}`, 'GET'],
        ['PUT', '/v1/ads', 'GET, HEAD, POST'],
        ['PATCH', '/v1/impressions', 'POST'],
        ['POST', '/healthz', 'GET'],
        ['DELETE', '/v1/admin/backfills', 'POST'],
        ['POST', `/c/${ad}`, 'GET, HEAD'],
      ] as const) {
        const a = await call(`${sys.url}${path}`, { method, headers: bearer(cat.apiKey) });
        expectError(a, 405, 'method_not_allowed');
        for (const m of allow.split(', ')) expect(a.headers.get('allow'), `${method} ${path}`).toContain(m);
      }
    });

    it('413: a body over the limit', async () => {
      const big = { redirectUrl: 'https://example.com/', name: 'x'.repeat(20_000) };
      expectError(
        await call(`${sys.url}/v1/ads`, { method: 'POST', headers: bearer(cat.apiKey), json: big }),
        413,
        'too_large',
      );
    });

    it('503 log_unavailable: Kafka gone and the spool not writable', async () => {
      const gate = gatedKafka('security-log-unavailable');
      const service = await startClickService({
        port: 0,
        topic,
        kafka: gate.kafka,
        pool,
        spoolPath: tempSpoolPath(),
        deadlineMs: 100,
        redisDeadlineMs: 2000,
        log: () => undefined,
      });
      try {
        gate.cut();
        // The spool's file handle closed under it: every write fails (EBADF), as on a broken disk.
        await (service.clickLog as unknown as { spool: { fh: FileHandle } }).spool.fh.close();
        const ad = cat.ads[0]!.adId;
        const imp = newImpression(config.ADCLICK_SIGNING_SECRET, ad, 3600, Date.now());
        expectError(await call(service.url + clickPath(imp)), 503, 'log_unavailable');
      } finally {
        await service.close().catch(() => undefined);
        gate.restore();
      }
    });

    it('503 catalogue_unavailable for a signed click PostgreSQL cannot confirm; /readyz naming the catalogue, kafka, postgres and redis (details for the admin key)', async () => {
      const gate = gatedKafka('security-readyz');
      const deadPool = createPool(1);
      await deadPool.end();
      gate.cut(); // before the start: the catalogue replica cannot be built
      const service = await startClickService({
        port: 0,
        topic,
        kafka: gate.kafka,
        pool: deadPool,
        redisUrl: 'redis://127.0.0.1:1',
        redisStartWaitMs: 0,
        catalogueStartWaitMs: 0,
        spoolPath: tempSpoolPath(),
        log: () => undefined,
      });
      try {
        // Unsigned: a 404 at once, without asking PostgreSQL; signed: PostgreSQL is asked, and fails.
        expectError(await call(`${service.url}/c/987654321987654`), 404, 'not_found');
        const imp = newImpression(config.ADCLICK_SIGNING_SECRET, '987654321987654', 3600, Date.now());
        expectError(
          await call(
            `${service.url}/c/987654321987654?imp=${imp.impressionId}&exp=${imp.expiresAt}&sig=${imp.sig}`,
          ),
          503,
          'catalogue_unavailable',
        );
        const ready = await call(`${service.url}/readyz`);
        expectError(ready, 503, 'not_ready');
        expect(ready.body.checks).toEqual({
          catalogue: 'down',
          spool: 'ok',
          kafka: 'down',
          postgres: 'down',
          redis: 'down',
        });
        expect(ready.body.details).toBeUndefined();
        const asAdmin = await call(`${service.url}/readyz`, { headers: ADMIN });
        expect(Object.keys(asAdmin.body.details as object).sort()).toEqual([
          'catalogue',
          'kafka',
          'postgres',
          'redis',
        ]);
      } finally {
        await service.close().catch(() => undefined);
        gate.restore();
      }
    });

    it('PostgreSQL failing: 500 with a request id, no SQL; /readyz names postgres and the speed store', async () => {
      // A database without our tables: every query fails with PostgreSQL's own message.
      const u = new URL(config.DATABASE_URL);
      u.pathname = '/postgres';
      const wrongDb = new pg.Pool({ connectionString: u.href, max: 2 });
      const dead = await deadSpeedStore();
      const api = await listen(
        createApiApp({ pool: wrongDb, speedStore: dead, rateLimitPrefix: prefix, rateLimits: roomy }),
        0,
        '127.0.0.1',
      );
      closers.push(
        () => wrongDb.end(),
        () => new Promise((r) => api.server.close(r)),
      );
      const logged: string[] = [];
      const original = console.error;
      console.error = (...args: unknown[]) => logged.push(args.map(String).join(' '));
      try {
        const internal = await call(`${api.url}/v1/ads/1`, { headers: ADMIN });
        expectError(internal, 500, 'internal');
        const byKey = await call(`${api.url}/v1/ads`, { headers: bearer(cat.apiKey) });
        expectError(byKey, 500, 'internal');
        // The details are in the log, under the same request id.
        const line = logged.find((l) => l.includes(internal.body.error!.requestId));
        expect(line).toMatch(/relation "ads" does not exist/);
      } finally {
        console.error = original;
      }
      // PostgreSQL down altogether: /readyz names it (and the speed store on it), nothing more.
      const deadPool = createPool(1);
      await deadPool.end();
      const down = await listen(
        createApiApp({ pool: deadPool, speedStore: dead, rateLimitPrefix: prefix, rateLimits: roomy }),
        0,
        '127.0.0.1',
      );
      closers.push(() => new Promise((r) => down.server.close(r)));
      const ready = await call(`${down.url}/readyz`);
      expectError(ready, 503, 'not_ready');
      expect(ready.body.checks).toEqual({ postgres: 'down', speed: 'down' });
      expect(ready.body.details).toBeUndefined();
    });

    it('Pinot failing: the answer says the speed layer is missing, without its address or reply', async () => {
      const down = new PinotSpeedStore('http://127.0.0.1:1');
      const noTable = new PinotSpeedStore(
        config.PINOT_BROKER_URL,
        `no_such_table_${randomUUID().slice(0, 8)}`,
      );
      for (const speedStore of [down, noTable]) {
        const api = await listen(
          createApiApp({ pool, speedStore, rateLimitPrefix: prefix, rateLimits: roomy }),
          0,
          '127.0.0.1',
        );
        closers.push(() => new Promise((r) => api.server.close(r)));
        const ad = cat.ads[0]!.adId;
        const a = await call(`${api.url}/v1/ads/${ad}/clicks?granularity=minute`, {
          headers: bearer(cat.apiKey),
        });
        expect(a.status).toBe(200);
        expect(a.body.unavailable).toEqual({
          layer: 'speed',
          reason: expect.any(String),
          requestId: a.headers.get('x-request-id'),
        });
        expect(a.text).not.toMatch(LEAK);
        const adv = await call(`${api.url}/v1/advertisers/me/clicks?granularity=hour`, {
          headers: bearer(cat.apiKey),
        });
        expect(adv.status).toBe(200);
        expect(adv.body.unavailable).toBeDefined();
        expect(adv.text).not.toMatch(LEAK);
        const hours = await call(`${api.url}/v1/admin/hours`, { headers: ADMIN });
        expect(hours.text).not.toMatch(LEAK);
        const ready = await call(`${api.url}/readyz`);
        expectError(ready, 503, 'not_ready');
        expect(ready.body.checks).toEqual({ postgres: 'ok', speed: 'down' });
      }
    });
  });

  describe('rate limits', () => {
    const limits = { authFailures: 3, authWindowS: 60, advertiser: 4, admin: 5, windowS: 60 };
    const limited = `rl-test-${randomUUID()}:`;
    let replicas: string[];
    let redis: ReturnType<typeof createRedis>;

    beforeAll(async () => {
      redis = createRedis();
      await redis.connect();
      // Two API replicas, one Redis: a limit holds across them.
      replicas = [];
      for (let i = 0; i < 2; i++) {
        const api = await listen(
          createApiApp({
            pool,
            speedStore: new PostgresSpeedStore(pool),
            redis,
            rateLimits: limits,
            rateLimitPrefix: limited,
          }),
          0,
          '127.0.0.1',
        );
        replicas.push(api.url);
        closers.push(() => new Promise((r) => api.server.close(r)));
      }
      closers.push(async () => redis.disconnect());
    });

    it('failed authentications slow the address that fails, across replicas, never a good key from it', async () => {
      // The replicas trust one proxy hop: X-Forwarded-For names the client, as our proxy sets it.
      const client = (ip: string) => ({ 'x-forwarded-for': ip });
      for (let i = 0; i < limits.authFailures; i++)
        expectError(
          await call(`${replicas[i % 2]}/v1/ads`, {
            headers: { ...client('10.9.0.1'), ...bearer(`ak_wrong${i}`) },
          }),
          401,
        );
      // The next failure from that address is slowed, on either replica.
      const blocked = await call(`${replicas[1]}/v1/ads`, {
        headers: { ...client('10.9.0.1'), ...bearer('ak_wrong-again') },
      });
      expectError(blocked, 429, 'rate_limited');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expectError(await call(`${replicas[0]}/v1/ads`, { headers: client('10.9.0.1') }), 429, 'rate_limited');
      // An advertiser behind the same NAT or proxy, with a good key, is served: it never failed.
      const sameAddress = await call(`${replicas[1]}/v1/ads`, {
        headers: { ...client('10.9.0.1'), ...bearer(cat.apiKey) },
      });
      expect(sameAddress.status, sameAddress.text).toBe(200);
      // Another address that fails is not slowed by the first one's failures.
      expectError(
        await call(`${replicas[0]}/v1/ads`, { headers: { ...client('10.9.0.2'), ...bearer('ak_wrong0') } }),
        401,
      );
    });

    it('failed authentications with one key are slowed from every address (a key guessed or misconfigured in many places)', async () => {
      const tried = `ak_tried-${randomUUID()}`;
      for (let i = 0; i < limits.authFailures; i++)
        expectError(
          await call(`${replicas[i % 2]}/v1/ads`, {
            headers: { 'x-forwarded-for': `10.7.${i}.1`, ...bearer(tried) },
          }),
          401,
        );
      expectError(
        await call(`${replicas[0]}/v1/ads`, {
          headers: { 'x-forwarded-for': '10.7.99.1', ...bearer(tried) },
        }),
        429,
        'rate_limited',
      );
      // That address is not over its own limit: another wrong key from it is a plain 401.
      expectError(
        await call(`${replicas[1]}/v1/ads`, {
          headers: { 'x-forwarded-for': '10.7.99.1', ...bearer(`ak_other-${randomUUID()}`) },
        }),
        401,
      );
    });

    it('requests per advertiser key, across replicas; the admin key has its own limit', async () => {
      const key = other.apiKey;
      for (let i = 0; i < limits.advertiser; i++)
        expect((await call(`${replicas[i % 2]}/v1/ads`, { headers: bearer(key) })).status).toBe(200);
      const over = await call(`${replicas[0]}/v1/ads`, { headers: bearer(key) });
      expectError(over, 429, 'rate_limited');
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another advertiser is not affected.
      expect((await call(`${replicas[1]}/v1/ads`, { headers: bearer(cat.apiKey) })).status).toBe(200);
      for (let i = 0; i < limits.admin; i++)
        expect((await call(`${replicas[i % 2]}/v1/admin/hours`, { headers: ADMIN })).status).toBe(200);
      expectError(await call(`${replicas[1]}/v1/admin/hours`, { headers: ADMIN }), 429, 'rate_limited');
    });

    it('behind the click process’s proxy a client cannot pick its bucket with X-Forwarded-For', async () => {
      const proxied = await startLocalSystem({
        topic,
        kafka,
        pool,
        api: { redis, rateLimits: limits, rateLimitPrefix: `rl-test-${randomUUID()}:` },
      });
      closers.push(() => proxied.close());
      for (let i = 0; i <= limits.authFailures; i++) {
        const a = await call(`${proxied.url}/v1/ads`, {
          headers: { 'x-forwarded-for': `10.8.0.${i}`, ...bearer(`ak_wrong${i}`) },
        });
        expect(a.status).toBe(i < limits.authFailures ? 401 : 429);
      }
    });
  });

  it('security headers: a CSP without inline scripts, nosniff, no framing; the page has no inline script', async () => {
    const page = await call(`${sys.url}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    // What the CSP would block: a script without src, inline handlers, style attributes.
    for (const tag of page.text.match(/<script\b[^>]*>/g) ?? []) expect(tag).toMatch(/\bsrc=/);
    expect(page.text).not.toMatch(/\son[a-z]+=|\sstyle=|<style\b/i);
    const api = await call(`${sys.url}/v1/ads`, { headers: bearer(cat.apiKey) });
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
    expect(api.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a HEAD on /c/:adId redirects but is not a click', async () => {
    const ad = cat.ads[1]!;
    const imp = newImpression(config.ADCLICK_SIGNING_SECRET, ad.adId, 3600, Date.now());
    const head = await fetch(sys.url + clickPath(imp), { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(302);
    expect(head.headers.get('location')).toBe(ad.redirectUrl);
    // Had the HEAD counted, this GET would be a duplicate (and two events would be logged).
    expect((await call(sys.url + clickPath(imp))).status).toBe(302);
    const logged = (await topicIo.readAll(1)).filter((l) => l.event.eventId === imp.impressionId);
    expect(logged.map((l) => l.event.status)).toEqual(['valid']);
  });

  it('signing-key rotation: impressions of the previous key still count, an unknown key id does not', async () => {
    const legacy = newSecret();
    const oldKey = `k1:${newSecret()}`;
    const newKey = `k2:${newSecret()}`;
    const ad = cat.ads[0]!.adId;
    const impression = async (base: string) => {
      const r = await call(`${base}/v1/impressions`, {
        method: 'POST',
        headers: bearer(cat.apiKey),
        json: { adId: ad },
      });
      expect(r.status).toBe(201);
      return r.body as unknown as { impressionId: string; clickUrl: string };
    };
    // Before: k1 signs (and an older link signed with the single secret, without key id, is out there).
    const before = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { signingKeys: signingKeys(oldKey, legacy), rateLimitPrefix: prefix, rateLimits: roomy },
      click: { signingKeys: signingKeys(oldKey, legacy), redisDeadlineMs: 2000 },
    });
    const fromOld = await impression(before.url);
    await before.close();
    expect(fromOld.clickUrl).toContain('&kid=k1');
    const unnamed = newImpression(legacy, ad, 3600, Date.now());
    expect(clickPath(unnamed)).not.toContain('kid=');

    // After: k2 signs, k1 still checks.
    const ring = signingKeys(`${newKey},${oldKey}`, legacy);
    const after = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { signingKeys: ring, rateLimitPrefix: prefix, rateLimits: roomy },
      click: { signingKeys: ring, redisDeadlineMs: 2000 },
    });
    closers.push(() => after.close());
    const fromNew = await impression(after.url);
    expect(fromNew.clickUrl).toContain('&kid=k2');
    const unknownKid = await impression(after.url);
    const forgedKid = await impression(after.url);
    for (const url of [
      fromOld.clickUrl,
      fromNew.clickUrl,
      clickPath(unnamed),
      unknownKid.clickUrl.replace('kid=k2', 'kid=k9'),
      forgedKid.clickUrl.replace('kid=k2', 'kid=k1'), // signed by k2, claims k1
    ])
      expect((await call(after.url + url)).status).toBe(302);

    const ids = [fromOld, fromNew, unnamed, unknownKid, forgedKid].map((i) => i.impressionId);
    const statusOf = new Map<string, string>();
    const deadline = Date.now() + 30_000;
    while (statusOf.size < ids.length && Date.now() < deadline)
      for (const l of await topicIo.readAll(0, { settleMs: 200 }))
        if (ids.includes(l.event.eventId)) statusOf.set(l.event.eventId, l.event.status);
    expect(ids.map((id) => statusOf.get(id))).toEqual([
      'valid',
      'valid',
      'valid',
      'bad_signature',
      'bad_signature',
    ]);
  });

  it('/openapi.json (OpenAPI 3.1, from the request schemas) lists every path and method of the contract', async () => {
    const doc = (await call(`${sys.url}/openapi.json`)).body as unknown as {
      openapi: string;
      paths: Record<string, Record<string, { parameters?: Array<{ name: string }>; requestBody?: unknown }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    for (const [method, path] of contractRoutes()) {
      expect(doc.paths[path], `${method} ${path}`).toBeDefined();
      expect(doc.paths[path]![method], `${method} ${path}`).toBeDefined();
    }
    // The schemas made it in: query parameters and bodies.
    const clicks = doc.paths['/v1/ads/{adId}/clicks']!.get!;
    expect(clicks.parameters!.map((p) => p.name).sort()).toEqual(['adId', 'from', 'granularity', 'to']);
    expect(doc.paths['/v1/ads']!.post!.requestBody).toBeDefined();
    expect(doc.paths['/v1/admin/backfills']!.post!.requestBody).toBeDefined();
  });
});

/**
 * Every `METHOD /path` of the HTTP contract (../shared/API.md beside the checkout when it is there,
 * else the same list written here), as OpenAPI paths.
 */
function contractRoutes(): Array<[string, string]> {
  const inline = [
    'POST /v1/advertisers',
    'POST /v1/ads',
    'GET /v1/ads/:adId',
    'GET /v1/ads',
    'POST /v1/impressions',
    'GET /c/:adId',
    'GET /v1/ads/:adId/clicks',
    'GET /v1/advertisers/me/clicks',
    'POST /v1/admin/backfills',
    'GET /v1/admin/hours',
    'GET /v1/admin/reconciliation',
    'GET /healthz',
    'GET /readyz',
    'GET /metrics',
    'GET /',
  ];
  const file = resolve('..', 'shared', 'API.md');
  const fromContract = existsSync(file)
    ? [...readFileSync(file, 'utf8').matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`?\s]*)/g)].map(
        (m) => `${m[1]} ${m[2]}`,
      )
    : [];
  return [...new Set([...inline, ...fromContract])].map((r) => {
    const [method, path] = r.split(' ') as [string, string];
    return [method.toLowerCase(), path.replace(/:(\w+)/g, '{$1}')];
  });
}
