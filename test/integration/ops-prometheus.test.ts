// Operations with real processes: the app's processes as children (private topic, consumer groups,
// S3 prefix and ports, against the shared stack's services) scraped by a private Prometheus with the
// configuration `npm start`'s Prometheus gets (stack/services/prometheus.ts).
// 1. every process's target is up;
// 2. every panel of the Grafana dashboard (ops/grafana/dashboards/adclick.json) evaluates without
//    error and every series it reads exists;
// 3. the drill: an unreadable message stops the archiver on one partition; ConsumerPartitionStalled
//    fires for that partition (and no other) within its window plus its `for:` (shortened here to
//    20 s + 10 s; the production 5 m + 5 m is what ops/alerts.test.yml tests with promtool).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3 } from '../../common/s3.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { AppProcess, freePort, waitFor } from './faults-support.js';
import { drillRules, metricNames, PrivatePrometheus } from './ops-support.js';
import { sleep } from '../../common/wait.js';

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const scratch = mkdtempSync(join(tmpdir(), 'adclick-ops-'));
const logDir = join('test-artifacts', 'ops-prometheus');
const pool = createPool(2);
const s3 = createS3();
const prom = new PrivatePrometheus(join(scratch, 'prometheus'));
const WINDOW_S = 20;
const FOR_S = 10;
const SCRAPE_S = 1;
const STALLED_PARTITION = 2;
const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' };

let env: Record<string, string>;
let base = '';
let processes: AppProcess[] = [];
const ads: string[] = [];
let advertiserKey = '';
let reconciliationDay: string | undefined;

async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = admin,
): Promise<Record<string, string>> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = (await res.json()) as Record<string, string>;
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** One click on each ad through the click process; every one must be a 302. */
async function clickEveryAd(): Promise<void> {
  for (const adId of ads) {
    const { clickUrl } = await post('/v1/impressions', { adId });
    const res = await fetch(`${base}${clickUrl}`, { redirect: 'manual' });
    expect(res.status).toBe(302);
  }
}

beforeAll(async () => {
  await migrate(pool);
  mkdirSync(logDir, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const ports = {
    api: await freePort(),
    speed: await freePort(),
    archiver: await freePort(),
    worker: await freePort(),
  };
  env = {
    PORT: String(port),
    API_PORT: String(ports.api),
    HOST: '127.0.0.1',
    KAFKA_CLICKS_TOPIC: `ops-clicks-${run}`,
    KAFKA_MINUTE_COUNTS_TOPIC: `ops-minute-counts-${run}`,
    SPEED_CONSUMER_GROUP: `ops-speed-${run}`,
    SPEED_STORE: 'postgres',
    SPEED_LAYER_METRICS_PORT: String(ports.speed),
    ARCHIVER_GROUP_ID: `ops-archiver-${run}`,
    ARCHIVER_FLUSH_MS: '1000',
    ARCHIVER_METRICS_PORT: String(ports.archiver),
    WORKER_METRICS_PORT: String(ports.worker),
    TEMPORAL_TASK_QUEUE: `ops-batch-${run}`,
    BATCH_S3_PREFIX: `ops-${run}/`,
    BATCH_WORK_DIR: join(scratch, 'batch'),
    ADCLICK_SPOOL_DIR: join(scratch, 'spool'),
    ADCLICK_CLICK_WORKERS: '1',
  };
  const click = new AppProcess('click', 'apps/click.ts', env, logDir);
  const api = new AppProcess('api', 'apps/api.ts', env, logDir);
  const speed = new AppProcess('speed-layer', 'apps/speed-layer.ts', env, logDir);
  const archiver = new AppProcess('archiver', 'apps/archiver.ts', env, logDir);
  const worker = new AppProcess('worker', 'apps/worker.ts', env, logDir);
  processes = [click, api, speed, archiver, worker];
  // The click process first: it creates the topics the others consume.
  await click.start({ readyLine: /click process: \d+ workers/ });
  await Promise.all([
    api.start({ readyLine: /\[api\] listening on/ }),
    speed.start({ readyLine: /consuming .* into postgres/ }),
    archiver.start({ readyLine: /\[archiver\] consuming/ }),
    worker.start({ readyLine: /\[worker\] polling task queue/ }),
  ]);

  const rules = join(scratch, 'drill-alerts.yml');
  writeFileSync(rules, drillRules('ConsumerPartitionStalled', `${WINDOW_S}s`, `${FOR_S}s`));
  await prom.start({
    targets: {
      click: `127.0.0.1:${port}`,
      api: `127.0.0.1:${ports.api}`,
      'speed-layer': `127.0.0.1:${ports.speed}`,
      archiver: `127.0.0.1:${ports.archiver}`,
      worker: `127.0.0.1:${ports.worker}`,
    },
    ruleFiles: [rules],
    intervalS: SCRAPE_S,
  });

  const advertiser = await post('/v1/advertisers', { name: `ops-test-${run}` });
  advertiserKey = advertiser.apiKey!;
  for (let i = 0; i < 4; i++) {
    const ad = await post('/v1/ads', {
      advertiserId: advertiser.advertiserId,
      redirectUrl: `https://ops-${i}.example/landing`,
    });
    ads.push(ad.adId!);
  }
  // The latest reconciliation report feeds a panel: a day of this run's own if there is none at all.
  const { rows } = await pool.query('select 1 from reconciliation_reports limit 1');
  if (rows.length === 0) {
    reconciliationDay = `1971-01-${String(1 + Math.floor(Math.random() * 28)).padStart(2, '0')}`;
    await pool.query(
      `insert into reconciliation_reports (day, speed_total, batch_total, report) values ($1, 0, 0, $2)
       on conflict (day) do nothing`,
      [reconciliationDay, { date: reconciliationDay, differingAds: 0 }],
    );
  }
}, 240_000);

afterAll(async () => {
  await prom.stop();
  for (const p of processes) await p.stop();
  const kafkaAdmin = createKafka('ops-test-cleanup').admin();
  await kafkaAdmin.connect();
  await kafkaAdmin
    .deleteTopics({ topics: [env.KAFKA_CLICKS_TOPIC!, env.KAFKA_MINUTE_COUNTS_TOPIC!] })
    .catch(() => undefined);
  await kafkaAdmin.deleteGroups([env.SPEED_CONSUMER_GROUP!, env.ARCHIVER_GROUP_ID!]).catch(() => undefined);
  await kafkaAdmin.disconnect();
  const keys = (await listObjects(s3, config.S3_BUCKET, env.BATCH_S3_PREFIX!)).map((o) => o.key);
  await deleteObjects(s3, config.S3_BUCKET, keys);
  await pool.query('delete from raw_files where key like $1', [`${env.BATCH_S3_PREFIX}%`]);
  await pool.query('delete from archive_watermarks where topic = $1', [env.KAFKA_CLICKS_TOPIC]);
  await pool.query('delete from speed_offsets where group_id = $1', [env.SPEED_CONSUMER_GROUP]);
  if (ads.length > 0)
    await pool.query('delete from speed_counts_minute where ad_id = any($1::bigint[])', [ads]);
  if (reconciliationDay)
    await pool.query('delete from reconciliation_reports where day = $1', [reconciliationDay]);
  await pool.end();
  s3.destroy();
  rmSync(scratch, { recursive: true, force: true });
}, 120_000);

describe('Prometheus over the app processes', () => {
  it('scrapes every process: each target is up', async () => {
    const targets = await waitFor(
      'every target up',
      async () => {
        const t = await prom.targets();
        return t.length === 5 && t.every((x) => x.health === 'up') && t;
      },
      30_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await prom.targets())}`);
    });
    expect(targets.map((t) => t.job).sort()).toEqual(['api', 'archiver', 'click', 'speed-layer', 'worker']);
  });

  it('every panel of the Grafana dashboard evaluates, and every series it reads exists', async () => {
    await clickEveryAd();
    // One metrics query, for the API's latency panel.
    const res = await fetch(`${base}/v1/ads/${ads[0]}/clicks?granularity=minute`, {
      headers: { authorization: `Bearer ${advertiserKey}` },
    });
    expect(res.status).toBe(200);

    const dashboard = JSON.parse(readFileSync('ops/grafana/dashboards/adclick.json', 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    const exprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
    );
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const names = [...new Set(exprs.flatMap((e) => metricNames(e.expr)))];
    expect(names.length).toBeGreaterThanOrEqual(15);
    // Every expression is valid PromQL for this Prometheus (an error fails at once).
    for (const { panel, expr } of exprs)
      await prom.query(expr).catch((e: Error) => expect.fail(`${panel}: ${e.message}`));
    // Every metric a panel reads has a series from the app's processes (scrapes take a few seconds).
    const missing = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const name of names)
        if ((await prom.query(`count(${name}{service="adclick"})`)).length === 0) out.push(name);
      return out;
    };
    let unknown: string[] = names;
    await waitFor(
      'every series of the dashboard',
      async () => {
        unknown = await missing();
        return unknown.length === 0;
      },
      30_000,
      1000,
    ).catch(() => undefined);
    expect(unknown, 'series the dashboard reads that no process exports').toEqual([]);
  });

  it('drill: the archiver stopped on one partition fires ConsumerPartitionStalled for it within window + for', async () => {
    const group = env.ARCHIVER_GROUP_ID!;
    const lagOf = async (): Promise<Map<string, number>> =>
      new Map(
        (await prom.query(`adclick_ops_kafka_consumer_lag{group="${group}"}`)).map((r) => [
          r.metric.partition!,
          Number(r.value[1]),
        ]),
      );
    // Healthy first: the archiver has committed what the clicks wrote.
    await clickEveryAd();
    await waitFor(
      'the archiver to catch up on every partition',
      async () => {
        const lag = await lagOf();
        return lag.size === 4 && [...lag.values()].every((l) => l === 0);
      },
      30_000,
      1000,
    );
    expect(
      await prom
        .alerts()
        .then((a) =>
          a.filter((x) => x.labels.alertname === 'ConsumerPartitionStalled' && x.labels.group === group),
        ),
    ).toEqual([]);

    // A message the archiver cannot read, on one partition: it stops there (on purpose).
    const producer = createKafka('ops-drill').producer();
    await producer.connect();
    await producer.send({
      topic: env.KAFKA_CLICKS_TOPIC!,
      messages: [{ partition: STALLED_PARTITION, value: Buffer.from('not a click event') }],
    });
    await producer.disconnect();
    const stalledAt = Date.now();

    // Clicks go on meanwhile: the other partitions keep advancing.
    let firing: { labels: Record<string, string>; state: string } | undefined;
    const bound = (WINDOW_S + FOR_S) * 1000 + 30_000; // + scrapes, the status reuse, evaluation
    while (!firing && Date.now() - stalledAt < bound) {
      await clickEveryAd();
      const alerts = await prom.alerts();
      firing = alerts.find(
        (a) =>
          a.labels.alertname === 'ConsumerPartitionStalled' &&
          a.labels.group === group &&
          a.state === 'firing',
      );
      if (!firing) await sleep(1000);
    }
    const elapsedS = (Date.now() - stalledAt) / 1000;
    console.log(
      `[ops drill] ConsumerPartitionStalled firing ${elapsedS.toFixed(1)} s after the stop (window ${WINDOW_S} s + for ${FOR_S} s)`,
    );
    expect(firing, `no firing alert within ${bound / 1000} s`).toBeDefined();
    expect(firing!.labels.partition).toBe(String(STALLED_PARTITION));
    expect(firing!.labels.topic).toBe(env.KAFKA_CLICKS_TOPIC);
    // Not before its `for:` (the partition is stalled from the message on: it had no lag before).
    expect(elapsedS).toBeGreaterThanOrEqual(FOR_S);
    // Only that partition of the archiver's group.
    const others = (await prom.alerts()).filter(
      (a) =>
        a.labels.alertname === 'ConsumerPartitionStalled' &&
        a.labels.group === group &&
        a.labels.partition !== String(STALLED_PARTITION),
    );
    expect(others).toEqual([]);
    // And the archiver says so itself.
    const stopped = await prom.query('sum(archiver_stopped_partitions{service="adclick"})');
    expect(Number(stopped[0]?.value[1])).toBe(1);
  });
});
