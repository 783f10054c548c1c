// One run of the app's processes for the system section (bench/system.ts): every process of
// `npm start` on topics, groups, a Pinot table, a task queue, an S3 prefix and ports of its own;
// its paced steps with their lag samples and per-process CPU; its exactness check; its cleanup.
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { config } from '../common/config.js';
import type { createKafka } from '../common/kafka.js';
import { createS3 } from '../common/s3.js';
import { dropPinotTable } from '../speed-layer/pinot-tables.js';
import { appProcesses } from '../stack/app.js';
import { Child } from './child.js';
import { clickStagesBetween } from './click-stages.js';
import { jitCpuSeconds, loadAverage, machineCpuSeconds, treeCpuSeconds } from './proc-cpu.js';
import { sleep } from '../common/wait.js';
import { httpOk, metrics, metricSum, startWrk, waitUntil, type Prober } from './system-load.js';
import { printStep, type LagSample, type StepResult, type Totals } from './system-report.js';

export type Admin = ReturnType<ReturnType<typeof createKafka>['admin']>;

const SAMPLE_EVERY_MS = 1000;
const APP_ORDER = ['click', 'api', 'worker', 'archiver', 'speed-layer'];

export interface AppRunOptions {
  pool: pg.Pool;
  admin: Admin;
  run: string;
  dir: string;
  ports: { click: number; api: number; speedMetrics: number; archiverMetrics: number };
  env: Record<string, string>;
  stackPids: Record<string, number | undefined>;
  wrk: { dir: string; connections: number };
  afterSeconds: number;
  /** Ads in the catalogue the clicks are drawn from: start waits until the click replica holds them. */
  catalogueAds: number;
}

export interface StepSpec {
  rate: number;
  name: string;
  paths: string;
  seconds: number;
  restartClick: boolean;
  prober: Prober;
}

export class AppRun {
  readonly clickBase: string;
  readonly apiBase: string;
  private readonly children = new Map<string, Child>();
  private readonly names;
  private readonly env: Record<string, string>;
  /** Counters of click processes stopped in this run (a restarted one counts from 0). */
  private readonly loggedBefore = { all: 0, valid: 0, failOpen: 0 };

  constructor(private readonly opts: AppRunOptions) {
    const { run, ports } = opts;
    this.clickBase = `http://127.0.0.1:${ports.click}`;
    this.apiBase = `http://127.0.0.1:${ports.api}`;
    this.names = {
      clicks: `bench-clicks-${run}`,
      counts: `bench-minute-counts-${run}`,
      speedGroup: `bench-speed-${run}`,
      archiverGroup: `bench-archiver-${run}`,
      pinotTable: `bench_${run.replace(/-/g, '_')}`,
      s3Prefix: `bench-${run}/`,
    };
    this.env = {
      HOST: '127.0.0.1',
      PORT: String(ports.click),
      API_PORT: String(ports.api),
      API_URL: this.apiBase,
      SPEED_LAYER_METRICS_PORT: String(ports.speedMetrics),
      KAFKA_CLICKS_TOPIC: this.names.clicks,
      KAFKA_MINUTE_COUNTS_TOPIC: this.names.counts,
      SPEED_CONSUMER_GROUP: this.names.speedGroup,
      ARCHIVER_GROUP_ID: this.names.archiverGroup,
      SPEED_PINOT_TABLE: this.names.pinotTable,
      TEMPORAL_TASK_QUEUE: `bench-${run}`,
      BATCH_S3_PREFIX: this.names.s3Prefix,
      BATCH_SCHEDULE_PREFIX: `bench-${run}`,
      ...opts.env,
    };
  }

  private get speedMetrics(): string {
    return `http://127.0.0.1:${this.opts.ports.speedMetrics}/metrics`;
  }

  private get archiverMetrics(): string {
    return `http://127.0.0.1:${this.opts.ports.archiverMetrics}/metrics`;
  }

  /** One of the app's processes, as stack/app.ts runs it (the archiver with its metrics served). */
  private startProcess(name: string): Child {
    const spec = appProcesses.find((p) => p.name === name)!;
    const extra = name === 'archiver' ? ['--metrics-port', String(this.opts.ports.archiverMetrics)] : [];
    const child = Child.node(name, spec.entry, this.env, this.opts.dir, [...(spec.args ?? []), ...extra]);
    this.children.set(name, child);
    return child;
  }

  async start(): Promise<void> {
    console.log(`[system] starting ${appProcesses.map((p) => p.name).join(', ')} (run ${this.opts.run})`);
    // The speed layer first: it creates the topics and the Pinot table the others use.
    const speed = this.startProcess('speed-layer');
    await waitUntil(httpOk(this.speedMetrics), 120_000, 'the speed layer', speed);
    for (const p of appProcesses) if (!this.children.has(p.name)) this.startProcess(p.name);
    await waitUntil(httpOk(`${this.apiBase}/readyz`), 120_000, 'the API process', this.children.get('api'));
    await waitUntil(
      httpOk(`${this.clickBase}/readyz`),
      120_000,
      'the click process',
      this.children.get('click'),
    );
    await waitUntil(httpOk(this.archiverMetrics), 120_000, 'the archiver', this.children.get('archiver'));
    await this.replicaHolds(this.opts.catalogueAds);
  }

  /**
   * Waits until the click process's replica holds `ads` ads. Right after a bulk load the relay may
   * still be publishing the catalogue (about 22,000 ads/s), and a replica that already caught up with
   * the topic is ready without them: clicks on the ads it lacks would measure PostgreSQL's fallback
   * (and its 503s), not the click path.
   */
  private async replicaHolds(ads: number): Promise<void> {
    const held = async (): Promise<number> =>
      metricSum(await metrics(`${this.clickBase}/metrics`), 'adclick_catalogue_replica_ads');
    let said = 0;
    await waitUntil(
      async () => {
        const n = await held();
        if (n >= ads) return true;
        if (Date.now() - said >= 30_000) {
          said = Date.now();
          console.log(`[system] the click replica holds ${n} of ${ads} ads; waiting for the relay`);
        }
        return false;
      },
      60 * 60_000,
      'the click replica to hold the catalogue',
      this.children.get('click'),
    );
  }

  async warmUp(paths: string, rate: number, seconds: number): Promise<void> {
    console.log(`[system] warm-up: ${rate}/s for ${seconds} s`);
    await startWrk(this.opts.wrk, this.clickBase, seconds, paths, rate, `wrk-warmup${this.opts.run}`).done;
    await sleep(5000);
  }

  private roots(wrk?: Child): Record<string, number | undefined> {
    return {
      click: this.children.get('click')?.pid,
      api: this.children.get('api')?.pid,
      'speed-layer': this.children.get('speed-layer')?.pid,
      archiver: this.children.get('archiver')?.pid,
      worker: this.children.get('worker')?.pid,
      ...this.opts.stackPids,
      'wrk (load)': wrk?.pid,
    };
  }

  private async clickCounter(name: string, label?: string): Promise<number> {
    return metricSum(await metrics(`${this.clickBase}/metrics`), name, label);
  }

  private clicksLogged = (): Promise<number> => this.clickCounter('adclick_clicks_total');

  /** Restarts the click process (a cold ad cache); returns the seconds until it is ready. */
  private async restartClick(): Promise<number> {
    console.log('[system] restarting the click process (cold ad cache)');
    this.loggedBefore.all += await this.clicksLogged();
    this.loggedBefore.valid += await this.clickCounter('adclick_clicks_total', '"valid"');
    this.loggedBefore.failOpen += await this.clickCounter('adclick_redis_fail_open_total');
    const t0 = Date.now();
    await this.children.get('click')!.stop();
    const click = this.startProcess('click');
    await waitUntil(httpOk(`${this.clickBase}/readyz`), 120_000, 'the restarted click process', click);
    return (Date.now() - t0) / 1000;
  }

  private async sampleLag(): Promise<LagSample> {
    const { admin, pool } = this.opts;
    const [speedText, archText] = await Promise.all([
      metrics(this.speedMetrics).catch(() => ''),
      metrics(this.archiverMetrics).catch(() => ''),
    ]);
    const s: LagSample = {
      t: Date.now(),
      speedLag: metricSum(speedText, 'adclick_speed_consumer_lag'),
      archiverLag: metricSum(archText, 'archiver_consumer_lag'),
    };
    try {
      const ends = await admin.fetchTopicOffsets(this.names.clicks);
      const end = ends.reduce((n, p) => n + Number(p.high), 0);
      const committed = async (groupId: string): Promise<number> => {
        const [t] = await admin.fetchOffsets({ groupId, topics: [this.names.clicks] });
        return (t?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      };
      s.speedCommittedLag = end - (await committed(this.names.speedGroup));
      s.archiverCommittedLag = end - (await committed(this.names.archiverGroup));
      const wm = await pool.query<{ wm: Date | null; n: string }>(
        'select min(watermark) as wm, count(*) as n from archive_watermarks where topic = $1',
        [this.names.clicks],
      );
      const row = wm.rows[0];
      if (row?.wm && Number(row.n) >= ends.length) s.watermarkDelayMs = s.t - row.wm.getTime();
    } catch {
      // sampled again next second
    }
    return s;
  }

  private async sampleWhile(running: () => boolean): Promise<LagSample[]> {
    const out: LagSample[] = [];
    while (running()) {
      const t0 = Date.now();
      out.push(await this.sampleLag());
      await sleep(Math.max(0, SAMPLE_EVERY_MS - (Date.now() - t0)));
    }
    return out;
  }

  /** One paced step: wrk, probes and lag samples; CPU over its steady part; 30 s of lag after it. */
  async step(spec: StepSpec): Promise<StepResult> {
    const clickRestartS = spec.restartClick ? await this.restartClick() : undefined;
    const loadBefore = loadAverage();
    console.log(`[system] step ${spec.name} for ${spec.seconds} s (load ${loadBefore.toFixed(2)})`);
    const stepStart = Date.now();
    const wrk = startWrk(
      this.opts.wrk,
      this.clickBase,
      spec.seconds,
      spec.paths,
      spec.rate,
      `wrk-${spec.rate}${this.opts.run}`,
    );
    let loading = true;
    const samples = this.sampleWhile(() => loading);
    const probesBefore = spec.prober.probes.length;
    const sending = spec.prober.send(stepStart + spec.seconds * 1000);
    // CPU over the step's steady part: after 2 s, until 1 s before wrk stops.
    await sleep(2000);
    const at0 = await this.measure(wrk.child);
    await sleep(Math.max(0, stepStart + (spec.seconds - 1) * 1000 - Date.now()));
    const at1 = await this.measure(wrk.child);
    const result = await wrk.done;
    loading = false;
    await sending;
    const during = await samples;
    let after = true;
    const afterSamples = this.sampleWhile(() => after);
    await sleep(this.opts.afterSeconds * 1000);
    after = false;
    const cpu: Record<string, number> = {};
    for (const k of Object.keys(at1.cpu)) cpu[k] = at1.cpu[k]! - (at0.cpu[k] ?? 0);
    const jit: Record<string, number> = {};
    for (const k of Object.keys(at1.jit))
      if (at1.jit[k]! > 0) jit[k] = Math.max(0, at1.jit[k]! - (at0.jit[k] ?? 0));
    const windowS = (at1.at - at0.at) / 1000;
    const r: StepResult = {
      step: spec.name,
      offered: spec.rate,
      seconds: spec.seconds,
      wrk: result,
      rate: result.requests / result.seconds,
      samples: during,
      after: await afterSamples,
      probes: spec.prober.probes.slice(probesBefore),
      cpu,
      jit,
      cpuWindowS: windowS,
      clicksInWindow: at1.clicks - at0.clicks,
      clickStages: clickStagesBetween(at0.clickMetrics, at1.clickMetrics),
      machineBusyCores: (at1.machine.busy - at0.machine.busy) / windowS,
      loadBefore,
      loadAfter: loadAverage(),
      clickRestartS,
    };
    printStep(r);
    return r;
  }

  private async measure(wrk: Child) {
    const cpu = treeCpuSeconds(this.roots(wrk));
    const jit = jitCpuSeconds(this.opts.stackPids);
    const machine = machineCpuSeconds();
    const clickMetrics = await metrics(`${this.clickBase}/metrics`);
    return {
      cpu,
      jit,
      machine,
      clicks: metricSum(clickMetrics, 'adclick_clicks_total'),
      clickMetrics,
      at: Date.now(),
    };
  }

  /**
   * Every click the click process logged is in Kafka, counted by the speed layer if valid, and
   * archived (waiting up to 2 minutes for the archiver's upload and the speed layer's flush).
   */
  async exactness(): Promise<Totals> {
    const logged = this.loggedBefore.all + (await this.clicksLogged());
    const valid = this.loggedBefore.valid + (await this.clickCounter('adclick_clicks_total', '"valid"'));
    const failOpen = this.loggedBefore.failOpen + (await this.clickCounter('adclick_redis_fail_open_total'));
    const speedCounted = async () =>
      metricSum(await metrics(this.speedMetrics), 'adclick_speed_events_counted_total');
    const inKafka = async () =>
      (await this.opts.admin.fetchTopicOffsets(this.names.clicks)).reduce((n, p) => n + Number(p.high), 0);
    const archived = async () => metricSum(await metrics(this.archiverMetrics), 'archiver_events_total');
    const until = Date.now() + 120_000;
    while (Date.now() < until && (await archived()) < (await inKafka())) await sleep(2000);
    while (Date.now() < until && (await speedCounted()) < valid) await sleep(2000);
    return {
      logged,
      valid,
      failOpen,
      inKafka: await inKafka(),
      speedCounted: await speedCounted(),
      archived: await archived(),
    };
  }

  /** Stops every process, then drops this run's topics, groups, table, rows and objects. */
  async stop(): Promise<void> {
    for (const name of APP_ORDER) await this.children.get(name)?.stop();
    const { pool, admin } = this.opts;
    const quiet = (what: string) => (e: Error) => console.error(`[system] cleanup ${what}: ${e.message}`);
    await dropPinotTable(this.names.pinotTable).catch(quiet('Pinot table'));
    await admin.deleteTopics({ topics: [this.names.clicks, this.names.counts] }).catch(quiet('topics'));
    await admin.deleteGroups([this.names.speedGroup, this.names.archiverGroup]).catch(() => undefined);
    const rows: Array<[string, string]> = [
      ['watermarks', 'delete from archive_watermarks where topic = $1'],
      ['reports', 'delete from click_process_reports where topic = $1'],
    ];
    for (const [what, sql] of rows) await pool.query(sql, [this.names.clicks]).catch(quiet(what));
    await pool
      .query("delete from raw_files where key like $1 || '%'", [this.names.s3Prefix])
      .catch(quiet('raw_files'));
    await this.deleteObjects().catch(quiet('S3 objects'));
  }

  private async deleteObjects(): Promise<void> {
    const s3 = createS3();
    try {
      for (;;) {
        const list = await s3.send(
          new ListObjectsV2Command({ Bucket: config.S3_BUCKET, Prefix: this.names.s3Prefix, MaxKeys: 1000 }),
        );
        const keys = (list.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
        if (keys.length === 0) break;
        await s3.send(new DeleteObjectsCommand({ Bucket: config.S3_BUCKET, Delete: { Objects: keys } }));
      }
    } finally {
      s3.destroy();
    }
  }

  /** The probe clicks' advertiser and ads. */
  static async dropProbeAds(pool: pg.Pool, advertiser: string | undefined): Promise<void> {
    if (!advertiser) return;
    const quiet = (what: string) => (e: Error) => console.error(`[system] cleanup ${what}: ${e.message}`);
    await pool.query('delete from ads where advertiser_id = $1', [advertiser]).catch(quiet('probe ads'));
    await pool
      .query('delete from advertisers where advertiser_id = $1', [advertiser])
      .catch(quiet('advertiser'));
  }
}
