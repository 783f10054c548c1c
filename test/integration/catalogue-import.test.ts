// The bulk catalogue CLIs against the real PostgreSQL: `catalogue:import` loads a CSV (header in
// any column order, quoted fields) and refuses, loading nothing, a file naming an unknown
// advertiser or a bad URL; `catalogue:generate` creates advertisers and ads.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../common/db.js';
import { createAdvertiserWithAds } from '../support/click.js';

const dir = mkdtempSync(join(tmpdir(), 'adclick-import-'));
const runTool = (script: string, args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('catalogue bulk tools', () => {
  const pool = createPool(1);
  let advertiserId: string;
  beforeAll(async () => {
    await migrate(pool);
    advertiserId = (await createAdvertiserWithAds(pool, 0)).advertiserId;
  });
  afterAll(() => pool.end());

  it('imports a CSV with COPY and reports the new ad ids', async () => {
    const tag = randomUUID();
    const file = join(dir, 'ok.csv');
    writeFileSync(
      file,
      `name,redirect_url,advertiser_id\n"Shoes, red",https://shop.example/${tag}/1,${advertiserId}\nplain,https://shop.example/${tag}/2?q=1,${advertiserId}\n,https://shop.example/${tag}/3,${advertiserId}\n`,
    );
    const r = runTool('tools/catalogue-import.ts', [file]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      ads: number;
      firstAdId: string;
      lastAdId: string;
    };
    expect(out.ads).toBe(3);
    const rows = await pool.query<{ name: string | null; redirect_url: string; advertiser_id: string }>(
      'select name, redirect_url, advertiser_id from ads where ad_id between $1 and $2 order by ad_id',
      [out.firstAdId, out.lastAdId],
    );
    expect(rows.rows).toEqual([
      { name: 'Shoes, red', redirect_url: `https://shop.example/${tag}/1`, advertiser_id: advertiserId },
      { name: 'plain', redirect_url: `https://shop.example/${tag}/2?q=1`, advertiser_id: advertiserId },
      { name: null, redirect_url: `https://shop.example/${tag}/3`, advertiser_id: advertiserId },
    ]);
  });

  it('an unknown advertiser id or a bad URL fails the whole import and loads nothing', async () => {
    const tag = randomUUID();
    const unknown = join(dir, 'unknown.csv');
    writeFileSync(
      unknown,
      `advertiser_id,redirect_url\n${advertiserId},https://x.example/${tag}/a\n999999999999999,https://x.example/${tag}/b\n`,
    );
    const r1 = runTool('tools/catalogue-import.ts', [unknown]);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toContain('unknown advertiser ids');
    const badUrl = join(dir, 'bad-url.csv');
    writeFileSync(
      badUrl,
      `advertiser_id,redirect_url\n${advertiserId},https://x.example/${tag}/c\n${advertiserId},javascript:alert(1)\n`,
    );
    const r2 = runTool('tools/catalogue-import.ts', [badUrl]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain(':3: redirect_url');
    const n = await pool.query('select 1 from ads where redirect_url like $1', [
      `https://x.example/${tag}/%`,
    ]);
    expect(n.rowCount).toBe(0);
  });

  it('generates M advertisers and N ads spread over them', async () => {
    const r = runTool('tools/catalogue-generate.ts', ['--ads', '1000', '--advertisers', '7']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      advertisers: number;
      ads: number;
      firstAdId: string;
      lastAdId: string;
    };
    expect(out).toMatchObject({ advertisers: 7, ads: 1000 });
    const per = await pool.query<{ n: string }>(
      'select count(*)::text as n from ads where ad_id between $1 and $2 group by advertiser_id',
      [out.firstAdId, out.lastAdId],
    );
    expect(per.rows.map((x) => Number(x.n)).sort()).toEqual([142, 143, 143, 143, 143, 143, 143]);
  });
});
