// The cluster drill (`npm run drill:cluster`, on a cluster from `npm run cluster:up`): the app's
// processes run against the local cluster with BATCH_STORE=pinot and SPEED_STORE=pinot, the traffic
// simulator offers clicks open loop (`--rate`, default 2000/s, `--duration`, default 300 s; it prints
// the rate it reached), its impressions minted as an ad server mints them (`--mint local`), and
// meanwhile, in turn: one Kafka broker killed with -9 and started again (it must rejoin every
// partition's ISR); one Pinot server killed with -9 while the metrics API is queried (every query
// must answer 200, from the replica) and started again; the leader of the partition of `clicks` that
// holds the most messages killed with -9 and started again. Then: every click answered as expected
// (302 for valid ones, none unanswered), provisional counts exact, and, after a backfill, final
// counts (from Pinot) exact. Prints one row per fault; exits 1 if any row fails. Logs in
// test-artifacts/drill-<run>/. The phases (docs/store.md "Nodes killed under load") reuse the faults
// test's process plumbing (test/integration/faults-support.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clusterEnv, clusterKafkaPorts, clusterPinotServers } from '../stack/cluster.js';

const { values: opts } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    // Long enough that every kill falls while clicks are sent (the Pinot server's restart alone
    // takes a minute or more here); a kill after the traffic fails its row.
    duration: { type: 'string', default: '300' },
  },
});

interface Row {
  fault: string;
  expectation: string;
  observed: string;
  pass: boolean;
}

async function main(): Promise<void> {
  Object.assign(process.env, clusterEnv, { BATCH_STORE: 'pinot', SPEED_STORE: 'pinot' });
  const { config } = await import('../common/config.js');
  const { createPool, migrate } = await import('../common/db.js');
  const { createKafka } = await import('../common/kafka.js');
  const { HOUR_MS, MINUTE_MS, hourOf, isoSeconds } = await import('../common/time.js');
  const { totalOf } = await import('./ground-truth.js');
  const { resolveAmbiguous, verifyCounts } = await import('./verify.js');
  const support = await import('../test/integration/faults-support.js');
  const { AppProcess, ROOT, freePort, sleep, waitFor } = support;
  const { runningPid, logFile } = await import('../stack/runtime.js');
  const { clusterServices } = await import('../stack/cluster-services.js');
  const services = new Map(clusterServices().map((s) => [s.name, s]));

  const run = randomUUID().slice(0, 8);
  const artifacts = join(ROOT, 'test-artifacts', `drill-${run}`);
  const logDir = join(artifacts, 'logs');
  mkdirSync(logDir, { recursive: true });
  const t0 = Date.now();
  const timeline: string[] = [];
  const note = (m: string): void => {
    const line = `+${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`;
    timeline.push(line);
    console.log(`[drill] ${line}`);
  };
  const rows: Row[] = [];

  for (const [name, s] of services) {
    if (runningPid(name) === undefined)
      throw new Error(`${name} is not running: start the cluster first (npm run cluster:up)`);
    // A node a previous drill started again may still be loading (a Pinot server's segments).
    await waitFor(`${name} to be healthy`, async () => s.healthy().catch(() => false), 300_000, 1000);
  }
  const pool = createPool(2);
  await migrate(pool);
  const admin = createKafka(`drill-${run}`).admin();
  await admin.connect();

  /** kill -9 of a cluster service's process group; then start it and wait until it is healthy. */
  const kill9 = (name: string): void => {
    const pid = runningPid(name);
    if (pid === undefined) throw new Error(`${name} is not running`);
    process.kill(-pid, 'SIGKILL');
  };
  const restart = async (name: string): Promise<void> => {
    const s = services.get(name)!;
    await waitFor(`${name} to be gone`, async () => runningPid(name) === undefined, 30_000, 200);
    // A node started while the killed one still releases its files (Kafka's log-dir lock) exits at
    // once: start it again. After kill -9 a node recovers its logs first; on a busy machine that
    // takes minutes.
    const deadline = Date.now() + 300_000;
    for (let attempt = 1; ; attempt++) {
      if (runningPid(name) === undefined) {
        if (attempt > 1) note(`${name} exited during its start; starting it again`);
        await s.start();
      }
      if (await s.healthy().catch(() => false)) return;
      if (Date.now() > deadline)
        throw new Error(`${name} did not become healthy within 300 s; see ${logFile(name)}`);
      await sleep(1000);
    }
  };
  const topic = `drill-clicks-${run}`;
  const fullIsr = async (): Promise<boolean> => {
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    return md.topics[0]!.partitions.every((p) => p.isr.length === 3);
  };

  const hour = hourOf(Date.now()) - (3 + Math.floor(Math.random() * 100)) * HOUR_MS;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // The clicks carry impressions minted by the simulator as an ad server does (its own key `as1`,
  // docs/impressions.md); 1% come from the API. The replica of the catalogue is the drill's own:
  // the default folder (.stack/catalogue) is the single-node stack's.
  const adServerSecret = randomBytes(24).toString('base64url');
  const env: Record<string, string> = {
    PORT: String(port),
    ADCLICK_SIGNING_KEYS: `k1:${config.ADCLICK_SIGNING_SECRET},as1:${adServerSecret}`,
    ADCLICK_SIGNER_SECRET: adServerSecret,
    ADCLICK_CATALOGUE_DIR: join(artifacts, 'catalogue'),
    API_PORT: String(await freePort()),
    KAFKA_CLICKS_TOPIC: topic,
    KAFKA_MINUTE_COUNTS_TOPIC: `drill-minute-counts-${run}`,
    SPEED_CONSUMER_GROUP: `drill-speed-${run}`,
    SPEED_PINOT_TABLE: `drill_minutes_${run}`,
    SPEED_LAYER_METRICS_PORT: String(await freePort()),
    ARCHIVER_GROUP_ID: `drill-archiver-${run}`,
    TEMPORAL_TASK_QUEUE: `drill-batch-${run}`,
    BATCH_S3_PREFIX: `drill-${run}/`,
    BATCH_PINOT_TABLE: `drill_batch_${run}`,
    BATCH_PINOT_RETENTION_DAYS: '36500',
    ADCLICK_SPOOL_DIR: join(artifacts, 'spool'),
    ADCLICK_CLICK_WORKERS: '2',
    ADCLICK_CLOCK_OFFSET_MS: String(hour + 2 * MINUTE_MS - Date.now()),
  };
  note(`drill clock in hour ${isoSeconds(hour)}; logs in ${logDir}`);
  const click = new AppProcess('click', 'apps/click.ts', env, logDir);
  const api = new AppProcess('api', 'apps/api.ts', env, logDir);
  const speed = new AppProcess('speed-layer', 'apps/speed-layer.ts', env, logDir);
  const archiver = new AppProcess('archiver', 'apps/archiver.ts', env, logDir);
  const worker = new AppProcess('worker', 'apps/worker.ts', env, logDir);
  const apps = [click, api, speed, archiver, worker];
  const truthPath = join(artifacts, 'ground-truth.json');
  let exitCode = 1;
  try {
    await click.start();
    await waitFor('click service /readyz', async () => (await fetch(`${base}/readyz`)).ok, 180_000);
    await Promise.all([
      api.start({ readyLine: /\[api\] listening on/ }),
      speed.start({ readyLine: /consuming .* into pinot/ }),
      archiver.start({ readyLine: /\[archiver\] consuming/ }),
      worker.start({ readyLine: /\[worker\] polling task queue/ }),
    ]);
    note('app processes up');
    const rate = Number(opts.rate);
    const durationS = Number(opts.duration);
    const simulator = new AppProcess(
      'simulate',
      'tools/simulate.ts',
      env,
      logDir,
      [
        ...['--base', base, '--rate', String(rate), '--duration', String(durationS)],
        ...[
          '--advertisers',
          '2',
          '--ads',
          '20',
          '--duplicate',
          '0.05',
          '--expired',
          '0',
          '--bad-signature',
          '0',
        ],
        ...[
          '--unknown',
          '0',
          '--hot',
          '0.3',
          '--out',
          truthPath,
          `--clock-offset-ms=${env.ADCLICK_CLOCK_OFFSET_MS}`,
        ],
        ...['--boundary-margin-ms', '1500', '--mint', 'local', '--signer-kid', 'as1', '--api-share', '0.01'],
      ],
      false,
    );
    await simulator.start({ readyLine: /dashboard key/, timeoutMs: 120_000 });
    const simulated = simulator.exitCode();
    const trafficAt = Date.now();
    let simulatorRunning = true;
    void simulated.finally(() => (simulatorRunning = false));
    /** Whether clicks are still being sent (on schedule) now: each kill must fall under load. */
    const underLoad = (): string | undefined =>
      simulatorRunning && Date.now() < trafficAt + durationS * 1000
        ? `under load (+${((Date.now() - trafficAt) / 1000).toFixed(0)} s of ${durationS} s of clicks)`
        : undefined;
    const loadAt: Record<string, string | undefined> = {};
    note(`traffic offered open loop: ${rate} clicks/s for ${durationS} s`);

    // 1. One Kafka broker (node 2) killed with -9, started again after 20 s; it must rejoin every ISR.
    await sleep(20_000);
    loadAt.broker = underLoad();
    kill9('kafka-2');
    note(`kill -9 kafka-2, ${loadAt.broker ?? 'AFTER the traffic'}`);
    await sleep(20_000);
    await restart('kafka-2');
    const rejoin = Date.now();
    const rejoined = await waitFor('kafka-2 back in every ISR', fullIsr, 120_000, 500)
      .then(() => true)
      .catch(() => false);
    note(
      `kafka-2 back; in every ISR of ${topic}: ${rejoined} (${((Date.now() - rejoin) / 1000).toFixed(1)} s)`,
    );

    // 2. One Pinot server killed with -9 while the metrics API is queried.
    const adminKey = config.ADCLICK_ADMIN_KEY;
    // An ad of this run (the simulator made them in this cluster's catalogue); its hour by minute
    // reads the speed layer's REALTIME table on the Pinot servers.
    const { rows: adRows } = await pool.query<{ ad_id: string }>('select max(ad_id) as ad_id from ads');
    const adId = adRows[0]!.ad_id;
    const queries = { ok: 0, failed: 0, errors: [] as string[] };
    let querying = true;
    const from = isoSeconds(hour);
    const to = isoSeconds(hour + HOUR_MS);
    const loop = (async () => {
      while (querying) {
        try {
          const res = await fetch(`${base}/v1/ads/${adId}/clicks?from=${from}&to=${to}&granularity=minute`, {
            headers: { authorization: `Bearer ${adminKey}` },
            signal: AbortSignal.timeout(5000),
          });
          if (res.ok) queries.ok++;
          else {
            queries.failed++;
            if (queries.errors.length < 3)
              queries.errors.push(`${res.status} ${(await res.text()).slice(0, 200)}`);
          }
        } catch (e) {
          queries.failed++;
          if (queries.errors.length < 3) queries.errors.push((e as Error).message);
        }
        await sleep(200);
      }
    })();
    await sleep(3000);
    const server = clusterPinotServers[1]!.name;
    loadAt.pinot = underLoad();
    kill9(server);
    note(`kill -9 ${server}, ${loadAt.pinot ?? 'AFTER the traffic'}`);
    await sleep(20_000);
    await restart(server);
    note(`${server} back`);
    await sleep(3000);
    querying = false;
    await loop;
    note(
      `metrics queries while ${server} was down and back: ${queries.ok} answered, ${queries.failed} failed`,
    );
    rows.push({
      fault: `kill -9 one Pinot server (${server}) for ~20 s, ${loadAt.pinot ?? 'AFTER the traffic'}`,
      expectation: 'metrics queries keep answering 200',
      observed: `${queries.ok} answered, ${queries.failed} failed${queries.errors.length ? `: ${queries.errors.join(' | ')}` : ''}`,
      pass: queries.failed === 0 && queries.ok > 0 && loadAt.pinot !== undefined,
    });

    // 3. The leader of the hottest partition (most messages) killed with -9, started again.
    const offsets = await admin.fetchTopicOffsets(topic);
    const hot = offsets.reduce((a, b) => (Number(b.high) > Number(a.high) ? b : a));
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    const leader = md.topics[0]!.partitions.find((p) => p.partitionId === hot.partition)!.leader;
    const leaderName = `kafka-${leader}`;
    loadAt.leader = underLoad();
    kill9(leaderName);
    note(
      `kill -9 ${leaderName}, leader of partition ${hot.partition} (${hot.high} messages, the most), ` +
        (loadAt.leader ?? 'AFTER the traffic'),
    );
    await sleep(15_000);
    await restart(leaderName);
    const leaderRejoined = await waitFor(`${leaderName} back in every ISR`, fullIsr, 120_000, 500)
      .then(() => true)
      .catch(() => false);
    note(`${leaderName} back; in every ISR: ${leaderRejoined}`);

    // The simulator exits 1 on any unexpected answer: that is a row's failure, not the drill's end.
    const simulatorExit = await simulated;
    if (!existsSync(truthPath))
      throw new Error(
        `the simulator exited ${simulatorExit} without its ground truth; see ${logDir}/simulate.log`,
      );
    note(`simulator exited ${simulatorExit}`);
    const truth = JSON.parse(readFileSync(truthPath, 'utf8')) as import('./ground-truth.js').GroundTruth;
    const sent = Object.values(truth.sent).reduce((a, b) => a + b, 0);
    const seconds = (truth.sendingMs ?? truth.endedAt - truth.startedAt) / 1000;
    note(
      `traffic done: ${sent} clicks sent in ${seconds.toFixed(0)} s (${(sent / seconds).toFixed(0)}/s reached, ${rate}/s offered; ` +
        `the last answer ${((truth.endedAt - truth.startedAt) / 1000).toFixed(0)} s after the first click; ` +
        `open loop since +${((trafficAt - t0) / 1000).toFixed(0)} s); ${totalOf(truth.counts)} valid first clicks; ` +
        `${truth.unexpected} unexpected, ${truth.failed} unanswered`,
    );
    const allAnswered = truth.unexpected === 0 && (truth.failed ?? 0) === 0;
    await waitFor(
      'the spools to drain',
      async () => {
        const m = await fetch(`${base}/metrics`).then((r) => r.text());
        return (support.metricValue(m, 'adclick_spool_depth') ?? 0) === 0;
      },
      180_000,
      1000,
    ).catch(() => undefined);
    const resolved = await resolveAmbiguous(truth, topic);
    const expected = resolved.truth;
    const unsure = truth.unsureMinute?.length ?? 0;
    note(
      `${unsure} valid clicks answered in the minute after they were sent: their minute from the clicks topic, ` +
        `${resolved.unsureMissing} of them not there`,
    );
    const provisional = await verifyCounts(expected, { final: false, timeoutS: 240, log: note });
    // Time moves on for the click processes: restarted with their clock past the hour's end.
    await click.kill9();
    await click.start({ env: { ADCLICK_CLOCK_OFFSET_MS: String(hour + HOUR_MS + MINUTE_MS - Date.now()) } });
    await waitFor('click service /healthz', async () => (await fetch(`${base}/healthz`)).ok, 120_000);
    const final = await verifyCounts(expected, { final: true, timeoutS: 600, log: note });
    const exact = (r: typeof final): string =>
      `expected ${r.expectedTotal}, reported ${r.reportedTotal}, ${r.diffs.length} differing points`;
    rows.unshift({
      fault: `kill -9 one Kafka broker (kafka-2) for 20 s, ${loadAt.broker ?? 'AFTER the traffic'}`,
      expectation: 'every click answered (302 for valid ones); the broker rejoins every ISR',
      observed:
        `${truth.unexpected} unexpected, ${truth.failed ?? 0} unanswered of ${sent}; rejoined: ${rejoined}` +
        (truth.unexpected > 0 ? ' (the first unexpected answers are in simulate.log)' : ''),
      pass: allAnswered && rejoined && loadAt.broker !== undefined,
    });
    rows.push(
      {
        fault: `kill -9 ${leaderName}, leader of the hottest partition (${hot.partition}), for 15 s, ${loadAt.leader ?? 'AFTER the traffic'}`,
        expectation: 'clicks go on (new leader); the broker rejoins every ISR',
        observed: `every click answered: ${allAnswered}; rejoined: ${leaderRejoined}`,
        pass: allAnswered && leaderRejoined && loadAt.leader !== undefined,
      },
      {
        fault: 'all of the above',
        expectation: 'provisional counts exact',
        observed:
          exact(provisional) +
          (unsure > 0
            ? ` (${unsure} clicks answered in the next minute, minute from the clicks topic, ${resolved.unsureMissing} missing)`
            : ''),
        pass: provisional.exact && resolved.unsureMissing === 0,
      },
      {
        fault: 'all of the above',
        expectation: 'final counts (Pinot OFFLINE, replication 2) exact after a backfill',
        observed: `${exact(final)}, all final: ${final.allFinal}`,
        pass: final.exact && final.allFinal && resolved.unsureMissing === 0,
      },
    );
    exitCode = rows.every((r) => r.pass) ? 0 : 1;
  } finally {
    for (const p of apps) await p.stop();
    await admin.disconnect();
    await pool.end();
    writeFileSync(join(artifacts, 'timeline.txt'), timeline.join('\n') + '\n');
  }
  console.log('\n| fault | expected | observed | pass |\n| --- | --- | --- | --- |');
  for (const r of rows)
    console.log(`| ${r.fault} | ${r.expectation} | ${r.observed} | ${r.pass ? 'yes' : 'NO'} |`);
  console.log(
    `\n[drill] ${exitCode === 0 ? 'every row passes' : 'FAILED'}; kafka ports ${clusterKafkaPorts.join(', ')}`,
  );
  process.exit(exitCode);
}

main().catch((e: unknown) => {
  console.error(`[drill] ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
