// The system section's load and probes (bench/system.ts): the catalogue's ad ids, the paced click
// paths wrk reads, wrk itself, the freshness prober, and reading the processes' /metrics.
import { createWriteStream, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import type pg from 'pg';
import { config } from '../common/config.js';
import { copyOut } from '../common/db.js';
import { minuteOf } from '../common/time.js';
import { sleep } from '../common/wait.js';
import { clickPath, newImpression } from '../ingest/impression.js';
import { Child } from './child.js';
import { parseWrkSummary, wrkScript, type WrkResult } from './wrk-script.js';

export const THREADS = 2;
const PROBE_EVERY_MS = 500;
/**
 * How often the prober asks the metrics API while a probe waits (`--probe-poll-ms`). Its questions
 * are the only reads of the API in the run, and each costs the API, Pinot and PostgreSQL ~10 ms of CPU
 * together: at one every 100 ms, 0.007 of the 10,000/s step's CPU s per 1,000 clicks (runs
 * mxe1uviw-s32d and mxe249dw-s32e, README "twenty-second round"), a dashboard refreshing ten times a
 * second charged to every click. Every 250 ms a probe's freshness is still read to within 250 ms
 * (late, never early) against the 2 s figure.
 */
export const PROBE_POLL_MS = 250;
/** Probes polled per round at most (the oldest waiting ones) when they are asked about one by one. */
const MAX_POLLED = 8;
/** The most ads the advertiser endpoint ranks (its `top`). */
const MAX_TOP = 1000;

/** The sum of a metric's samples (those whose labels include `label`, if given) in a Prometheus text. */
export function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([\d.e+-]+|NaN)$/.exec(line);
    if (m && m[1] === name && (!label || (m[2] ?? '').includes(label))) sum += Number(m[3]);
  }
  return sum;
}

/**
 * A process's /metrics text. A click process whose cores are full can take seconds to gather its
 * workers' metrics: asked three times, 10 s each, before the step (and the run's figures) is given up.
 */
export async function metrics(url: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      return await res.text();
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

export async function waitUntil(
  check: () => Promise<boolean>,
  ms: number,
  what: string,
  child?: Child,
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child && !child.running)
      throw new Error(`${child.name} exited while waiting for ${what}:\n${child.output().slice(-3000)}`);
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export const httpOk = (url: string) => async (): Promise<boolean> =>
  (await fetch(url, { signal: AbortSignal.timeout(2000) })).status === 200;

/** Every ad id of the catalogue, ascending (COPY: 10M ids in a few seconds, 80 MB as doubles). */
export async function catalogueIds(pool: pg.Pool): Promise<Float64Array> {
  const { rows } = await pool.query<{ n: string }>('select count(*) as n from ads');
  const ids = new Float64Array(Number(rows[0]!.n) + 100_000);
  let n = 0;
  const client = await pool.connect();
  try {
    const stream = copyOut(client, 'copy (select ad_id from ads order by ad_id) to stdout');
    let rest = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const text = rest + chunk.toString('latin1');
      let start = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
        if (n < ids.length) ids[n++] = Number(text.slice(start, nl));
        start = nl + 1;
      }
      rest = text.slice(start);
    }
  } finally {
    client.release();
  }
  return ids.subarray(0, n);
}

/** Writes `count` paths for a paced step, one file per wrk thread (`<base>.<thread>`). */
export async function writePaths(base: string, count: number, next: () => string): Promise<void> {
  const outs = Array.from({ length: THREADS }, (_, t) => createWriteStream(`${base}.${t}`));
  const perThread = Math.ceil(count / THREADS);
  for (let t = 0; t < THREADS; t++) {
    let chunk: string[] = [];
    for (let i = 0; i < perThread; i++) {
      chunk.push(next());
      if (chunk.length === 10_000) {
        if (!outs[t]!.write(chunk.join('\n') + '\n')) await once(outs[t]!, 'drain');
        chunk = [];
      }
    }
    if (chunk.length > 0) outs[t]!.write(chunk.join('\n') + '\n');
    outs[t]!.end();
    await once(outs[t]!, 'finish');
  }
}

/** wrk, paced at `rate`, over the paths in `<paths>.<thread>`. */
export function startWrk(
  opts: { dir: string; connections: number },
  url: string,
  seconds: number,
  paths: string,
  rate: number,
  name: string,
): { child: Child; done: Promise<WrkResult> } {
  const script = join(opts.dir, `${name}.lua`);
  writeFileSync(script, wrkScript({ threads: THREADS, rate, streamed: true }));
  const child = new Child(
    name,
    'wrk',
    [`-t${THREADS}`, `-c${opts.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url],
    { BENCH_PATHS: paths },
    opts.dir,
  );
  const done: Promise<WrkResult> = child.exited().then(() => parseWrkSummary(child.output()));
  return { child, done };
}

export interface Probe {
  adId: string;
  sentAt: number;
  at302?: number;
  seenAt?: number;
  failure?: string;
}

/**
 * Sends a probe click every PROBE_EVERY_MS while `sending()`, each on an ad of its own of one
 * advertiser, and polls the metrics API until it reports each. A round is one question for all the
 * waiting probes: the advertiser's clicks with its top ads (a probe is seen once its ad is among them),
 * as a dashboard asks. Asking each waiting probe's ad apart made up to 80 queries a second once
 * freshness slipped, each ~7 ms of the API's CPU and ~5 ms of Pinot's: up to a core of the machine
 * the bench measures, spent on the bench's own questions. When more probe ads fall in the asked
 * minutes than the endpoint ranks, the oldest waiting ones are asked about one by one instead.
 */
export class Prober {
  readonly probes: Probe[] = [];
  /** Questions asked of the metrics API so far. */
  questions = 0;
  private next = 0;
  private polling = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly ads: string[],
    private readonly advertiserId: string,
    private readonly clickBase: string,
    private readonly apiBase: string,
    private readonly pollEveryMs: number,
  ) {
    this.loop = this.poll();
  }

  static count(seconds: number): number {
    return Math.ceil(seconds / (PROBE_EVERY_MS / 1000)) + 20;
  }

  /** Probe clicks until `until` (epoch ms). */
  async send(until: number): Promise<void> {
    let at = Date.now();
    const sends: Array<Promise<void>> = [];
    while (Date.now() < until && this.next < this.ads.length) {
      const probe: Probe = { adId: this.ads[this.next++]!, sentAt: Date.now() };
      this.probes.push(probe);
      sends.push(this.click(probe));
      at += PROBE_EVERY_MS;
      await sleep(Math.max(0, at - Date.now()));
    }
    await Promise.all(sends);
  }

  async stop(): Promise<void> {
    this.polling = false;
    await this.loop;
  }

  private async click(probe: Probe): Promise<void> {
    const imp = newImpression(config.ADCLICK_SIGNING_SECRET, probe.adId, 3600, Date.now());
    try {
      const res = await fetch(this.clickBase + clickPath(imp), {
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.status === 302) probe.at302 = Date.now();
      else probe.failure = `status ${res.status}`;
    } catch (e) {
      probe.failure = (e as Error).message;
    }
  }

  private async poll(): Promise<void> {
    while (this.polling) {
      const waiting = this.probes.filter((p) => p.at302 !== undefined && p.seenAt === undefined);
      if (waiting.length > 0) {
        const from = minuteOf(waiting[0]!.sentAt) - 60_000;
        const inWindow = this.probes.filter((p) => p.sentAt >= from).length;
        if (inWindow <= MAX_TOP) await this.seenAll(waiting, from);
        else await Promise.all(waiting.slice(0, MAX_POLLED).map((p) => this.seen(p)));
      }
      await sleep(this.pollEveryMs);
    }
  }

  /** One advertiser-wide question for every waiting probe sent at or after `from`. */
  private async seenAll(waiting: Probe[], from: number): Promise<void> {
    const to = minuteOf(Date.now()) + 120_000;
    const body = await this.ask<{ ads?: Array<{ adId: string; clicks: number }> }>(
      `/v1/advertisers/me/clicks?granularity=minute&from=${from}&to=${to}&top=${MAX_TOP}&advertiserId=${this.advertiserId}`,
    );
    const clicked = new Set((body?.ads ?? []).filter((a) => a.clicks > 0).map((a) => a.adId));
    const now = Date.now();
    for (const p of waiting) if (clicked.has(p.adId)) p.seenAt ??= now;
  }

  private async seen(p: Probe): Promise<void> {
    const from = minuteOf(p.sentAt) - 60_000;
    const to = minuteOf(Date.now()) + 120_000;
    const body = await this.ask<{ total?: number }>(
      `/v1/ads/${p.adId}/clicks?granularity=minute&from=${from}&to=${to}`,
    );
    if ((body?.total ?? 0) > 0) p.seenAt ??= Date.now();
  }

  /** A metrics question with the admin key: its body on a 200, else undefined (asked again next round). */
  private async ask<T>(path: string): Promise<T | undefined> {
    this.questions++;
    try {
      const res = await fetch(this.apiBase + path, {
        headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
        signal: AbortSignal.timeout(5000),
      });
      const body = (await res.json()) as T;
      return res.status === 200 ? body : undefined;
    } catch {
      return undefined;
    }
  }
}
