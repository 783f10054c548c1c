// Open-loop click load for the fault matrix (test/integration/fault-matrix-support.ts runs it as a
// child process, so that its timing does not share an event loop with the test's probes): valid
// signed clicks, each a new impression, on the given ads in turn, sent at a fixed rate whatever the
// answers — a click is due at t0 + i / rate and its latency is measured from that moment, so a
// stalled server shows as latency (and as clicks queued behind it), not as a lower rate.
//
// First every ad is clicked once until it redirects (an ad created through the API a moment ago may
// take a little while to reach the click process), then the load runs for --duration seconds.
// Writes a GroundTruth (tools/ground-truth.ts) plus the load's figures to --out: a 302 whose send and
// answer fell in the same minute of the drill clock is counted in that minute; any other valid
// click (a 302 across a minute boundary, a non-302 answer, no answer) is listed as ambiguous, and the
// verifier looks it up in the clicks topic (tools/verify.ts resolveAmbiguous).
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { minuteOf } from '../../common/time.js';
import { sleep } from '../../common/wait.js';
import { clickPath, configuredSigningKeys, newImpression } from '../../ingest/impression.js';
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

function click(adId: string): Promise<Outcome & { impressionId: string; sentAt: number }> {
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
  const settle = (adId: string, o: Outcome & { impressionId: string; sentAt: number }): void => {
    truth.sent.valid!++;
    const answeredAt = clock();
    if (o.status === 302 && minuteOf(o.sentAt) === minuteOf(answeredAt))
      recordValidClick(truth.counts, adId, o.sentAt);
    else truth.ambiguous!.push({ adId, impressionId: o.impressionId });
    if (o.status === 'none') truth.failed!++;
    else if (o.status !== 302) truth.unexpected++;
  };
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
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const realT0 = Date.now();
  let sent = 0;
  let next = 0;
  // SIGTERM ends the load early (the matrix stops it once the fault is over and the after phase ran).
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  while (!stopping && performance.now() - t0 < durationMs) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent < due) {
      const scheduled = t0 + (sent / rate) * 1000;
      const adId = ads[next++ % ads.length]!;
      sent++;
      const p = click(adId).then((o) => {
        // Latency from when the click was due (open loop), not from when the loop got to it.
        const total = performance.now() - scheduled;
        settle(adId, o);
        if (o.status === 302 && scheduled - t0 < warmupMs) return;
        if (o.status === 302) {
          latencies.push(total);
          series.push(Math.round(realT0 + scheduled - t0), Math.round(total * 10) / 10);
        } else other[String(o.status)] = (other[String(o.status)] ?? 0) + 1;
        if (o.status !== 302 || total > deadlineMs) {
          if (o.status === 302) late++;
          const at = Date.now();
          firstBadAt ??= at;
          lastBadAt = at;
        }
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await sleep(2);
  }
  const sentRate = sent / ((Date.now() - realT0) / 1000);
  await Promise.all(pending);
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

main().catch((e: unknown) => {
  console.error(`[load] ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
