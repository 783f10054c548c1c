// `npm run catalogue:generate -- --ads N --advertisers M`: creates M synthetic advertisers and N ads
// spread over them, with COPY and a progress bar (see catalogue-load.ts). Prints the time taken.
// The synthetic advertisers' keys are random and discarded: use the admin key to look at them.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { hashApiKey } from '../common/auth.js';
import { createPool, migrate } from '../common/db.js';
import { copyAds, progressBar, REBUILD_INDEX_ROWS } from './catalogue-load.js';

const { values } = parseArgs({
  options: { ads: { type: 'string', default: '1000' }, advertisers: { type: 'string', default: '100' } },
});
const adCount = Number(values.ads);
const advertiserCount = Number(values.advertisers);
if (
  !Number.isSafeInteger(adCount) ||
  adCount < 1 ||
  !Number.isSafeInteger(advertiserCount) ||
  advertiserCount < 1
) {
  console.error('usage: npm run catalogue:generate -- --ads N --advertisers M  (N, M positive integers)');
  process.exit(2);
}

const pool = createPool(2);
try {
  await migrate(pool);
  const run = randomBytes(4).toString('hex');
  const started = performance.now();

  // Advertisers: COPY too (M may be large), then read back their ids by this run's name prefix.
  const client = await pool.connect();
  let ids: string[];
  try {
    let n = 0;
    const advertisers = Readable.from(
      (function* () {
        while (n < advertiserCount) {
          const lines: string[] = [];
          for (let i = 0; i < 10_000 && n < advertiserCount; i++, n++)
            lines.push(`synthetic-${run}-${n},${hashApiKey(randomBytes(32).toString('base64url'))}\n`);
          yield lines.join('');
        }
      })(),
    );
    await pipeline(
      advertisers,
      client.query(copyFrom('copy advertisers (name, api_key_hash) from stdin with (format csv)')),
    );
    ids = (
      await client.query<{ advertiser_id: string }>(
        'select advertiser_id::text from advertisers where name like $1 order by advertiser_id',
        [`synthetic-${run}-%`],
      )
    ).rows.map((r) => r.advertiser_id);
  } finally {
    client.release();
  }
  console.error(`${ids.length} advertisers created (${((performance.now() - started) / 1000).toFixed(1)} s)`);

  const bar = progressBar('ads', adCount);
  let made = 0;
  const CHUNK = 20_000;
  const csv = Readable.from(
    (function* () {
      while (made < adCount) {
        const lines: string[] = [];
        const end = Math.min(adCount, made + CHUNK);
        for (let i = made; i < end; i++)
          lines.push(`${ids[i % ids.length]},https://shop.example/${run}/p${i}?utm_source=adclick,ad ${i}\n`);
        bar.tick(end - made);
        made = end;
        yield lines.join('');
      }
    })(),
  );
  const result = await copyAds(pool, csv, {
    rebuildIndex: adCount >= REBUILD_INDEX_ROWS,
    onPhase: (m) => console.error(`\n${m}…`),
  });
  bar.done();
  const total = (performance.now() - started) / 1000;
  console.log(
    JSON.stringify({
      advertisers: ids.length,
      ads: result.rows,
      firstAdId: result.firstAdId,
      lastAdId: result.lastAdId,
      seconds: Number(total.toFixed(1)),
    }),
  );
} finally {
  await pool.end();
}
