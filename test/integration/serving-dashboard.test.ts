// The dashboard in a real browser (playwright-core driving Debian's chromium) against the real
// PostgreSQL: enter a key, see the live chart with one point per bucket, watch it refresh itself,
// then a past day half finalized: final points filled, provisional ones hollow. Saves a screenshot to
// test-artifacts/dashboard.png.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../common/db.js';
import { minuteOf } from '../../common/time.js';
import { CHROMIUM_ARGS, ensureChromium } from '../../stack/ensure-chromium.js';
import {
  at,
  createAd,
  createAdvertiser,
  finalizeHours,
  insertBatchRows,
  insertSpeedRows,
  openSpeedStore,
  randomPastDay,
  startApp,
  type TestApp,
} from './serving-fixtures.js';

const pool = createPool(4);
const day = randomPastDay();
const userDataDir = mkdtempSync(join(tmpdir(), 'adclick-dashboard-'));
let app: TestApp;
let context: BrowserContext;
let page: Page;
let advertiser: { advertiserId: string; key: string };
let ads: string[];

// A day-shaped curve for the finalized morning, per ad: ad 0 gets twice ad 1's clicks.
const morning = Array.from({ length: 12 }, (_, h) => 20 + Math.round(30 * Math.sin((h / 11) * Math.PI)));

beforeAll(async () => {
  await migrate(pool);
  app = await startApp({ pool, speedStore: openSpeedStore(pool) });
  advertiser = await createAdvertiser(pool, `dashboard-test-${day}`);
  ads = [
    await createAd(pool, advertiser.advertiserId, 'Winter sale'),
    await createAd(pool, advertiser.advertiserId, 'Spring teaser'),
  ];

  // Now: provisional clicks in the current minute (the current hour is never finalized yet).
  await insertSpeedRows(pool, [
    [ads[0]!, minuteOf(Date.now()), 0, 3],
    [ads[1]!, minuteOf(Date.now()), 1, 1],
  ]);
  // The past day: hours 0..11 finalized with batch counts, 12..23 provisional speed counts.
  await finalizeHours(
    pool,
    morning.map((_, h) => at(day, h)),
  );
  await insertBatchRows(pool, {
    adHours: morning.flatMap((c, h): Array<[string, number, number]> => [
      [ads[0]!, at(day, h), 2 * c],
      [ads[1]!, at(day, h), c],
    ]),
    advertiserHours: morning.map((c, h): [string, number, number] => [
      advertiser.advertiserId,
      at(day, h),
      3 * c,
    ]),
  });
  await insertSpeedRows(
    pool,
    Array.from({ length: 12 }, (_, i): [string, number, number, number] => [
      ads[i % 2]!,
      at(day, 12 + i, 30),
      0,
      40 - 2 * i,
    ]),
  );

  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: ensureChromium(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

afterAll(async () => {
  await context?.close();
  rmSync(userDataDir, { recursive: true, force: true });
  await app?.close();
  await pool.end();
});

const pointCount = (kind: string) => page.locator(`#chart circle.point.${kind}`).count();

describe('dashboard', () => {
  it('serves its assets without a key', async () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/app.js', 'javascript'],
      ['/style.css', 'text/css'],
    ] as const) {
      const res = await fetch(`${app.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
    }
  });

  it('after a key is entered, draws the live chart with one point per minute and refreshes itself', async () => {
    await page.goto(`${app.url}/`);
    await page.fill('#key', advertiser.key);
    await page.click('#key-form button[type=submit]');
    await page.locator('#controls').waitFor({ state: 'visible' });
    await page.selectOption('#range', '3600000');
    await page.selectOption('#granularity', 'minute');
    const chart = page.locator('#chart svg[data-points="60"]');
    await chart.waitFor({ timeout: 15_000 });
    expect(await page.locator('#chart circle.point').count()).toBe(60);
    await expect.poll(() => page.textContent('#total'), { timeout: 10_000 }).toBe('4');
    expect(await page.locator('#top-ads tbody tr').count()).toBe(2);
    expect(await page.isVisible('#live')).toBe(true);
    // The key is kept for the tab only.
    expect(await page.evaluate(() => sessionStorage.getItem('adclick.apiKey'))).toBe(advertiser.key);

    // A new provisional click appears without touching the page.
    await insertSpeedRows(pool, [[ads[1]!, minuteOf(Date.now()), 2, 5]]);
    await expect.poll(() => page.textContent('#total'), { timeout: 15_000, interval: 500 }).toBe('9');
  });

  it('a half-finalized past day by hour: 12 final points, 12 provisional ones, the top ads', async () => {
    const dayIso = new Date(day).toISOString().slice(0, 10);
    await page.selectOption('#range', 'custom');
    await page.selectOption('#granularity', 'hour');
    await page.fill('#from', `${dayIso}T00:00`);
    await page.fill('#to', `${new Date(day + 86_400_000).toISOString().slice(0, 10)}T00:00`);
    await page.locator('#chart svg[data-points="24"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => pointCount('final'), { timeout: 10_000 }).toBe(12);
    expect(await pointCount('provisional')).toBe(12);
    const morningTotal = morning.reduce((a, b) => a + b, 0) * 3;
    const afternoonTotal = Array.from({ length: 12 }, (_, i) => 40 - 2 * i).reduce((a, b) => a + b, 0);
    expect(await page.textContent('#total')).toBe((morningTotal + afternoonTotal).toLocaleString('en-US'));
    const rows = await page.locator('#top-ads tbody tr').allTextContents();
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('Winter sale');
    expect(await page.isVisible('#live')).toBe(false); // a past range does not poll

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });
  });
});
