// `npm run bench:impressions`: impressions per second per core, two ways an ad server mints them.
// 1. The signer module in the ad server's process (packages/impression-signer): mint() in a loop.
// 2. POST /v1/impressions/batch (1,000 a request) with an impression key, on the real API app
//    (createApiApp over the stack's PostgreSQL and Redis) in this process, `--clients` requests in
//    flight. CPU is this process's (API and client together), so impressions per CPU second is a
//    floor for the API alone.
// The baseline, measured in the same run: randomUUID + one HMAC-SHA256, the work every impression costs.
import { createHmac, createSecretKey, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createApiApp, listen } from '../apps/api.js';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createRedis } from '../common/redis.js';
import { createImpressionSigner } from '../packages/impression-signer/src/index.js';
import { PostgresSpeedStore } from '../speed-layer/postgres-speed-store.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '4' },
  },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);

function loop(fn: () => unknown): { perSecond: number; perCpuSecond: number } {
  for (let i = 0; i < 50_000; i++) fn();
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < (seconds * 1000) / 2) {
    for (let i = 0; i < 10_000; i++) fn();
    n += 10_000;
  }
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: n / wall, perCpuSecond: n / ((cpu.user + cpu.system) / 1e6) };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const key = createSecretKey(Buffer.from('bench-secret-0123456789abcdef0123'));
  const baseline = loop(() =>
    createHmac('sha256', key).update(`1.${randomUUID()}.1800000000000`).digest('base64url'),
  );
  const signer = createImpressionSigner({ keyId: 'as1', secret: 'bench-secret-0123456789abcdef0123' });
  let ad = 0;
  const module = loop(() => signer.mint(String((ad++ % 1_000_000) + 1)));
  console.log(`baseline (randomUUID + HMAC)   ${fmt(baseline.perCpuSecond)} /CPU s`);
  console.log(
    `signer module mint()           ${fmt(module.perCpuSecond)} /CPU s  (${fmt(module.perSecond)} /s)`,
  );

  const pool = createPool(4);
  await migrate(pool);
  const advertiser = await pool.query<{ advertiser_id: string }>(
    "insert into advertisers (name, api_key_hash) values ('bench impressions', $1) returning advertiser_id",
    [`bench-${randomUUID()}`],
  );
  const ads = await pool.query<{ ad_id: string }>(
    `insert into ads (advertiser_id, redirect_url)
     select $1, 'https://bench.example/' || g from generate_series(1, 1000) g returning ad_id`,
    [advertiser.rows[0]!.advertiser_id],
  );
  const adIds = ads.rows.map((r) => r.ad_id);
  const redis = createRedis();
  await redis.connect();
  const api = await listen(
    createApiApp({
      pool,
      redis,
      speedStore: new PostgresSpeedStore(pool),
      rateLimitPrefix: `rl-bench-${randomUUID()}:`,
    }),
    0,
    '127.0.0.1',
  );
  const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' };
  const made = (await (
    await fetch(`${api.url}/v1/admin/impression-keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'bench' }),
    })
  ).json()) as { apiKey: string; keyId: string };
  const headers = { authorization: `Bearer ${made.apiKey}`, 'content-type': 'application/json' };
  const body = JSON.stringify({ adIds });
  let minted = 0;
  let refused = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const res = await fetch(`${api.url}/v1/impressions/batch`, { method: 'POST', headers, body });
        const reply = (await res.json()) as { impressions?: unknown[] };
        if (res.status === 201) minted += reply.impressions!.length;
        else refused++;
      }
    }),
  );
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(
    `batch endpoint (1,000/request)  ${fmt(minted / cpuS)} /CPU s  (${fmt(minted / wall)} /s, ${clients} in flight, API and client in one process, ${refused} refused)`,
  );
  await fetch(`${api.url}/v1/admin/impression-keys/${made.keyId}/revoke`, { method: 'POST', headers: admin });
  await pool.query('delete from ads where advertiser_id = $1', [advertiser.rows[0]!.advertiser_id]);
  await pool.query('delete from advertisers where advertiser_id = $1', [advertiser.rows[0]!.advertiser_id]);
  api.server.close();
  api.server.closeAllConnections();
  await pool.end();
  redis.disconnect();
  process.exit(0);
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
