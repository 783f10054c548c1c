// The operator view (serving-layer/public/ops.html) in a real browser (playwright-core driving Debian's
// chromium) against the real PostgreSQL and Kafka: behind the admin key, a past day's hours by state
// with their revisions and why an hour is not final, consumer lag, a click process's spool, a recent
// backfill linked to the Temporal UI. Saves a screenshot to test-artifacts/ops-view.png.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createTemporalClient } from '../../common/temporal.js';
import { CHROMIUM_ARGS, ensureChromium } from '../../stack/ensure-chromium.js';
import {
  at,
  createAdvertiser,
  openSpeedStore,
  randomPastDay,
  startApp,
  type TestApp,
} from './serving-fixtures.js';

const pool = createPool(4);
const day = randomPastDay();
const dayIso = new Date(day).toISOString().slice(0, 10);
const run = Math.random().toString(36).slice(2, 8);
const backfill = `backfill-ops-view-${run}`;
let temporal: Client;
const clickProcess = `ops-view-click-${run}`;
const userDataDir = mkdtempSync(join(tmpdir(), 'adclick-ops-view-'));
const waitingReason = `${dayIso}T03:00:00Z is not complete after 5 min: waiting for the archiver to upload what Kafka holds`;
let app: TestApp;
let context: BrowserContext;
let page: Page;

async function opsJson(key: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${app.url}/v1/admin/ops`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  await migrate(pool);
  temporal = await createTemporalClient();
  app = await startApp({ pool, speedStore: openSpeedStore(pool), temporalClient: temporal });
  // A backfill as an operator starts it (on a task queue of its own: no worker runs it, it stays running).
  await temporal.workflow.start('backfill', {
    taskQueue: `ops-view-${run}`,
    workflowId: backfill,
    args: [{ from: `${dayIso}T00:00:00Z`, to: `${dayIso}T02:00:00Z` }],
  });
  // Hours 0 and 1 final (hour 1 recounted by a backfill: revision 2), hour 2 failed, hour 3 waiting
  // for completeness, the rest open.
  for (const [hour, revisions] of [
    [0, 1],
    [1, 2],
  ] as const) {
    for (let r = 1; r <= revisions; r++)
      await pool.query(
        `insert into hour_revisions (hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events)
         values ($1, $2, now(), 'ops-view', $3, $4, $4)`,
        [new Date(at(day, hour)), r, r === 2 ? backfill : `compact-hour-ops-view-${run}`, 100 * r + hour],
      );
    await pool.query(
      `insert into finalized_hours (hour, run_id, workflow_id, valid_clicks, events, revision, listed_at)
       values ($1, 'ops-view', $2, $3, $3, $4, now())`,
      [
        new Date(at(day, hour)),
        revisions === 2 ? backfill : `compact-hour-ops-view-${run}`,
        100 * revisions + hour,
        revisions,
      ],
    );
  }
  await pool.query(
    `insert into hour_failures (hour, workflow_id, reason, kind)
     values ($1, $2, 'S3 answered 503 three times', 'failed'), ($3, $4, $5, 'waiting')`,
    [
      new Date(at(day, 2)),
      `compact-hour-ops-view-${run}-2`,
      new Date(at(day, 3)),
      `compact-hour-ops-view-${run}-3`,
      waitingReason,
    ],
  );
  await pool.query(
    `insert into click_process_reports (process_id, topic, logged_before, spool_depth) values ($1, $2, now(), 1234)`,
    [clickProcess, `ops-view-${run}`],
  );

  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: ensureChromium(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 1000 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

afterAll(async () => {
  await context?.close();
  rmSync(userDataDir, { recursive: true, force: true });
  await app?.close();
  await temporal?.workflow
    .getHandle(backfill)
    .terminate('ops-view test cleanup')
    .catch(() => undefined);
  await temporal?.connection.close();
  const [from, to] = [new Date(day), new Date(day + 86_400_000)];
  for (const table of ['hour_revisions', 'finalized_hours', 'hour_failures'])
    await pool.query(`delete from ${table} where hour >= $1 and hour < $2`, [from, to]);
  await pool.query('delete from click_process_reports where process_id = $1', [clickProcess]);
  await pool.end();
});

describe('operator view', () => {
  it('its data needs the admin key: 401 without a key, 403 with an advertiser key', async () => {
    expect((await fetch(`${app.url}/v1/admin/ops`)).status).toBe(401);
    const advertiser = await createAdvertiser(pool, `ops-view-${run}`);
    expect((await opsJson(advertiser.key)).status).toBe(403);
    const { status } = await opsJson(config.ADCLICK_ADMIN_KEY);
    expect(status).toBe(200);
    // Temporal's visibility lists a new workflow within a second or so.
    await expect
      .poll(async () => (await opsJson(config.ADCLICK_ADMIN_KEY)).body.backfills, {
        timeout: 15_000,
        interval: 500,
      })
      .toContainEqual(expect.objectContaining({ workflowId: backfill, status: 'RUNNING' }));
  });

  it("shows a day's hours by state with revisions and reasons, lag, spools and backfills", async () => {
    const hours = (await (
      await fetch(`${app.url}/v1/admin/hours?from=${dayIso}T00:00:00Z&to=${dayIso}T06:00:00Z`, {
        headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
      })
    ).json()) as { hours: Array<{ hour: string; state: string }> };

    await page.goto(`${app.url}/ops.html`);
    await page.fill('#key', config.ADCLICK_ADMIN_KEY);
    await page.click('#key-form button[type=submit]');
    await page.locator('#ops').waitFor({ state: 'visible', timeout: 15_000 });
    await page.fill('#day', dayIso);
    await page.dispatchEvent('#day', 'change');
    const hourRow = (h: number) =>
      page.locator(`#hours tr[data-hour="${dayIso}T${String(h).padStart(2, '0')}:00:00Z"]`);
    await hourRow(0).waitFor({ timeout: 15_000 });
    expect(await page.locator('#hours tbody tr').count()).toBe(24);

    expect(await hourRow(0).getAttribute('data-state')).toBe('finalized');
    expect(await hourRow(1).getAttribute('data-state')).toBe('finalized');
    expect(await hourRow(1).textContent()).toContain('r1: 101 · r2: 201');
    expect(await hourRow(2).getAttribute('data-state')).toBe('failed');
    expect(await hourRow(2).textContent()).toContain('S3 answered 503 three times');
    // The hour that waits for completeness is waiting (not failed), with what it waits for.
    expect(hours.hours[3]!.state).toBe('waiting');
    expect(await hourRow(3).getAttribute('data-state')).toBe('waiting');
    expect(await hourRow(3).textContent()).toContain('waiting for the archiver to upload what Kafka holds');
    expect(await hourRow(4).getAttribute('data-state')).toBe('open');

    const backfillLink = page.locator('#backfills a', { hasText: backfill });
    expect(await backfillLink.getAttribute('href')).toMatch(
      new RegExp(
        `^http://${config.HOST}:${config.TEMPORAL_UI_PORT}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows/${backfill}/[0-9a-f-]{36}/history$`,
      ),
    );
    expect(await page.locator('#spools tr', { hasText: clickProcess }).textContent()).toContain('1,234');
    const { body } = await opsJson(config.ADCLICK_ADMIN_KEY);
    const consumers = body.consumers as unknown[] | null;
    expect(consumers, `Kafka offsets not read: ${JSON.stringify(body.errors)}`).not.toBeNull();
    expect(await page.locator('#consumers tbody tr').count()).toBe(consumers!.length);
    expect(await page.locator('#disks tbody tr').count()).toBe(2);
    // Redis's memory, from its INFO (the stack's Redis has no maxmemory: its host bounds it).
    const redis = body.redis as { usedBytes: number; systemBytes: number } | null;
    expect(redis, `Redis not read: ${JSON.stringify(body.errors)}`).not.toBeNull();
    expect(redis!.usedBytes).toBeGreaterThan(0);
    expect(redis!.systemBytes).toBeGreaterThan(redis!.usedBytes);
    expect(await page.locator('#redis').textContent()).toMatch(
      /^\d+\.\d\d GiB used of .+ keys evicted since it started$/,
    );

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/ops-view.png', fullPage: true });
  });
});
