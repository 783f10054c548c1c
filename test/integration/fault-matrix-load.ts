// Open-loop click load for the fault matrix (test/integration/fault-matrix-support.ts runs it as a
// child process, so that its timing does not share an event loop with the test's probes): valid
// signed clicks, each a new impression, on the given ads in turn, sent at a fixed rate whatever the
// answers — a click is due at t0 + i / rate and its latency is measured from that moment, so a
// stalled server shows as latency (and as clicks queued behind it), not as a lower rate.
//
// The clicks are sent by Vegeta (`--generator vegeta`, the default: a Go HTTP load generator kept by
// its author since 2013, built into the stack's cache with `go install`), fed its targets lazily
// through a pipe: this process only signs impressions. Against a bare 302 server at 2,000 clicks/s,
// Node's own http client (`--generator node`, kept to compare with) put a p99 of ~6 ms of its own into
// every figure, Vegeta ~2 ms, for the same CPU (a quarter of a core); docs/faults.md has both.
//
// First every ad is clicked once until it redirects (an ad created through the API a moment ago may
// take a little while to reach the click process), then the load runs for --duration seconds.
// Writes a GroundTruth (tools/ground-truth.ts) plus the load's figures to --out: a 302 whose send and
// answer fell in the same minute of the drill clock is counted in that minute; any other valid
// click (a 302 across a minute boundary, a non-302 answer, no answer) is listed as ambiguous, and the
// verifier looks it up in the clicks topic (tools/verify.ts resolveAmbiguous).
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { minuteOf } from '../../common/time.js';
import { sleep } from '../../common/wait.js';
import { clickPath, configuredSigningKeys, newImpression } from '../../ingest/impression.js';
import { ensureVegeta } from '../../stack/vegeta.js';
import { recordValidClick, type GroundTruth } from '../../tools/ground-truth.js';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    ads: { type: 'string' }, // comma-separated ad ids
    advertiser: { type: 'string', default: '' },
    rate: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '30' },
    'deadline-ms': { type: 'string', default: '1000' },
    // The click process's first seconds at full rate (JIT, pools, connections) are not its steady
    // state: their clicks are sent and counted, but left out of the latency figures.
    'warmup-seconds': { type: 'string', default: '3' },
    'timeout-ms': { type: 'string', default: '30000' },
    'clock-offset-ms': { type: 'string', default: '0' },
    generator: { type: 'string', default: process.env.ADCLICK_DRILL_GENERATOR ?? 'vegeta' },
    out: { type: 'string' },
  },
});

export interface LoadReport {
  truth: GroundTruth;
  rate: number;
  offered: number;
  answered302: number;
  /** Non-302 answers by status, and "none" for no answer within the timeout / a broken connection. */
  other: Record<string, number>;
  late: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Real time (ms) of the first and last click that was not a 302 within the deadline. */
  firstBadAt?: number;
  lastBadAt?: number;
  /** Of the 302s after the warm-up seconds (the others count in `answered302` and the truth only). */
  measured: number;
  /** Each measured 302 as a pair: real time (ms) the click was due, its latency (ms); for figures
   * over part of the run (the matrix leaves a Kafka fault's first seconds out of its judged p99). */
  series: number[];
  /** Achieved send rate: clicks actually sent / duration (the generator keeps up or says so). */
  sentRate: number;
}

const base = args.base!;
const ads = args.ads!.split(',');
const rate = Number(args.rate);
const durationMs = Number(args.duration) * 1000;
const deadlineMs = Number(args['deadline-ms']);
const timeoutMs = Number(args['timeout-ms']);
const warmupMs = Number(args['warmup-seconds']) * 1000;
const clockOffsetMs = Number(args['clock-offset-ms']);
const clock = (): number => Date.now() + clockOffsetMs;
const keys = configuredSigningKeys();
const { hostname: host, port } = new URL(base);
const agent = new Agent({ keepAlive: true, maxSockets: 512 });

interface Outcome {
  status: number | 'none';
  ms: number;
}

type Sent = Outcome & { impressionId: string; sentAt: number };
/** Clicks sent, over how many seconds of sending. */
type Offered = { sent: number; seconds: number };
type Record_ = (adId: string, o: Sent, dueAt: number, total: number, sinceStart: number) => void;

function click(adId: string): Promise<Sent> {
  const sentAt = clock();
  const imp = newImpression(keys, adId, 3600, sentAt);
  const t0 = performance.now();
  return new Promise((resolve) => {
    // The whole wait is bounded, queueing in the agent included (its `timeout` starts only once a
    // socket is free): a saturated server must not leave a backlog that drains for minutes.
    const signal = AbortSignal.timeout(timeoutMs);
    const req = request({ host, port, path: clickPath(imp), agent, signal }, (res) => {
      res.resume();
      res.once('end', () =>
        resolve({
          status: res.statusCode!,
          ms: performance.now() - t0,
          impressionId: imp.impressionId,
          sentAt,
        }),
      );
    });
    req.once('error', () =>
      resolve({ status: 'none', ms: performance.now() - t0, impressionId: imp.impressionId, sentAt }),
    );
    req.end();
  });
}

async function main(): Promise<void> {
  const truth: GroundTruth = {
    baseUrl: base,
    startedAt: clock(),
    endedAt: 0,
    advertisers: args.advertiser ? [{ advertiserId: args.advertiser, apiKey: '' }] : [],
    ads: ads.map((adId) => ({ adId, advertiserId: args.advertiser ?? '' })),
    counts: {},
    sent: { valid: 0 },
    unexpected: 0,
    clockOffsetMs,
    failed: 0,
    ambiguous: [],
  };
  const settle = (adId: string, o: Sent): void => {
    truth.sent.valid!++;
    const answeredAt = o.sentAt + o.ms;
    if (o.status === 302 && minuteOf(o.sentAt) === minuteOf(answeredAt))
      recordValidClick(truth.counts, adId, o.sentAt);
    else truth.ambiguous!.push({ adId, impressionId: o.impressionId });
    if (o.status === 'none') truth.failed!++;
    else if (o.status !== 302) truth.unexpected++;
  };
  // Built before the first click (the first time on a machine, a minute of `go install`), so the load
  // is offered as soon as it says it is ready.
  const vegeta = args.generator === 'node' ? undefined : await ensureVegeta();
  // Warm-up: each ad once, until it redirects.
  const warmDeadline = Date.now() + 60_000;
  for (const adId of ads) {
    for (;;) {
      const o = await click(adId);
      settle(adId, o);
      if (o.status === 302) break;
      if (Date.now() > warmDeadline) throw new Error(`ad ${adId} never redirected (last: ${o.status})`);
      await sleep(200);
    }
  }
  truth.unexpected = 0; // warm-up misses are not the load's
  console.log(`[load] ${ads.length} ads redirect; offering ${rate} clicks/s for ${durationMs / 1000} s`);

  const latencies: number[] = [];
  const series: number[] = [];
  const other: Record<string, number> = {};
  let late = 0;
  let firstBadAt: number | undefined;
  let lastBadAt: number | undefined;
  /** One click's outcome: `dueAt` real time (ms) it was due, `total` ms from then to its answer. */
  const record = (adId: string, o: Sent, dueAt: number, total: number, sinceStart: number): void => {
    settle(adId, o);
    if (o.status === 302 && sinceStart < warmupMs) return;
    if (o.status === 302) {
      latencies.push(total);
      series.push(Math.round(dueAt), Math.round(total * 10) / 10);
    } else other[String(o.status)] = (other[String(o.status)] ?? 0) + 1;
    if (o.status !== 302 || total > deadlineMs) {
      if (o.status === 302) late++;
      const at = dueAt + total;
      firstBadAt = Math.min(firstBadAt ?? at, at);
      lastBadAt = Math.max(lastBadAt ?? at, at);
    }
  };
  // SIGTERM ends the load early (the matrix stops it once the fault is over and the after phase ran).
  let stopping = false;
  const stopped = new Promise<void>((resolve) =>
    process.once('SIGTERM', () => {
      stopping = true;
      resolve();
    }),
  );
  const { sent, seconds } =
    args.generator === 'node'
      ? await sendWithNode(record, () => stopping)
      : await sendWithVegeta(vegeta!, record, stopped, args.out!);
  const sentRate = sent / seconds;
  truth.endedAt = clock();
  latencies.sort((a, b) => a - b);
  const pct = (q: number): number =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! : NaN;
  const report: LoadReport = {
    truth,
    rate,
    offered: sent,
    answered302: sent - Object.values(other).reduce((a, b) => a + b, 0),
    other,
    late,
    measured: latencies.length,
    series,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs: latencies.length ? latencies[latencies.length - 1]! : NaN,
    firstBadAt,
    lastBadAt,
    sentRate,
  };
  writeFileSync(args.out!, JSON.stringify(report));
  console.log(
    `[load] done: ${sent} offered (${sentRate.toFixed(0)}/s), ${report.answered302} × 302, other ${JSON.stringify(other)}, ` +
      `${late} late; p50 ${report.p50Ms.toFixed(1)} ms, p99 ${report.p99Ms.toFixed(1)} ms, max ${report.maxMs.toFixed(1)} ms`,
  );
  agent.destroy();
}

/** The clicks from Node's own http client, one process: the old generator, kept to compare with. */
async function sendWithNode(record: Record_, stopping: () => boolean): Promise<Offered> {
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const realT0 = Date.now();
  let sent = 0;
  while (!stopping() && performance.now() - t0 < durationMs) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent < due) {
      const scheduled = t0 + (sent / rate) * 1000;
      const adId = ads[sent % ads.length]!;
      sent++;
      const p = click(adId).then((o) => {
        // Latency from when the click was due (open loop), not from when the loop got to it.
        record(adId, o, realT0 + scheduled - t0, performance.now() - scheduled, scheduled - t0);
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await sleep(2);
  }
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(pending);
  return { sent, seconds };
}

/**
 * The clicks sent by Vegeta at `rate`, their targets signed here and written ahead into its stdin
 * (a pipe's worth: well under a second), its results read back once it has stopped. Vegeta times a
 * click from when it starts sending it; the latency recorded is from when it was due (its pacer sends
 * click i at start + i / rate), as the Node generator measures it.
 */
async function sendWithVegeta(
  vegeta: string,
  record: Record_,
  stopped: Promise<void>,
  out: string,
): Promise<Offered> {
  const results = `${out}.vegeta`;
  const attack = spawn(
    vegeta,
    [
      'attack',
      ...['-lazy', '-format=http', `-rate=${rate}/1s`, `-duration=${durationMs}ms`],
      // A 302 is the answer, not a hop to follow; no body is kept; as many connections as needed up
      // to the Node generator's 512 sockets.
      ...['-redirects=-1', '-max-body=0', `-timeout=${timeoutMs}ms`, '-max-connections=512'],
      `-output=${results}`,
    ],
    // The generator shares the 2 cores with what it measures, and Go's collector takes a quarter of
    // them while it marks: with its default (GOGC=100 on a small heap: many collections) the control
    // row measured 25.5, 57.8, 30.7, 28.8, 34.2 ms at p99 (median 30.7), with collections only once
    // its heap nears 1 GiB 22.3, 19.4, 29.5, 25.4, 31.8, 22.2, 38.4, 25.8 ms (median 25.6; 5 December,
    // alternating runs, the click process's own share within 25 ms alike). A caller's own setting wins.
    { stdio: ['pipe', 'ignore', 'pipe'], env: { GOGC: 'off', GOMEMLIMIT: '1GiB', ...process.env } },
  );
  let stderr = '';
  attack.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  attack.stdin.on('error', () => undefined); // EPIPE once it has stopped
  const exited = new Promise<number | null>((resolve) => attack.once('exit', resolve));
  const started = performance.now();
  let next = 0;
  let ended = false;
  const feed = (): void => {
    while (!ended) {
      const adId = ads[next++ % ads.length]!;
      const line = `GET ${base}${clickPath(newImpression(keys, adId, 3600, clock()))}\n`;
      if (!attack.stdin.write(line)) return void attack.stdin.once('drain', feed);
    }
  };
  void exited.then(() => (ended = true));
  feed();
  await Promise.race([stopped, exited]);
  attack.kill('SIGTERM'); // it stops pacing, waits for the clicks in flight, writes their results
  const code = await exited;
  const seconds = (performance.now() - started) / 1000;
  attack.stdin.destroy();
  if (code !== 0) throw new Error(`vegeta attack exited ${code}: ${stderr.slice(-1000)}`);

  interface VegetaResult {
    seq: number;
    code: number;
    timestamp: string;
    latency: number;
    error: string;
    url: string;
  }
  const encode = spawn(vegeta, ['encode', '--to', 'json', results], { stdio: ['ignore', 'pipe', 'pipe'] });
  const parsed: { r: VegetaResult; startedAt: number }[] = [];
  for await (const line of createInterface({ input: encode.stdout })) {
    if (!line) continue;
    const r = JSON.parse(line) as VegetaResult;
    if (!r.url) continue; // a tick that found no target: nothing was sent
    parsed.push({ r, startedAt: Date.parse(r.timestamp) });
  }
  rmSync(results, { force: true });
  // Vegeta's start: no click starts before it is due, so the earliest start less its due offset.
  // (A loop, not Math.min(...all): a long cell has more results than a call has room for arguments.)
  let t0 = Infinity;
  for (const { r, startedAt } of parsed) t0 = Math.min(t0, startedAt - (r.seq / rate) * 1000);
  for (const { r, startedAt } of parsed) {
    const url = new URL(r.url);
    const adId = url.pathname.slice('/c/'.length);
    const ms = r.latency / 1e6;
    const o: Sent = {
      status: r.code === 0 ? 'none' : r.code,
      ms,
      impressionId: url.searchParams.get('imp')!,
      sentAt: startedAt + clockOffsetMs,
    };
    const dueAt = t0 + (r.seq / rate) * 1000;
    record(adId, o, dueAt, startedAt + ms - dueAt, dueAt - t0);
  }
  return { sent: parsed.length, seconds };
}

main().catch((e: unknown) => {
  console.error(`[load] ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
