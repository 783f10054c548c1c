// Verifier (`npm run verify -- <ground truth file> [--final] [--timeout 600]`): compares the metrics
// API with a simulator's ground truth, per ad and minute, and prints "exact match" or the
// differences. Provisional mode (default) waits for the speed layer to catch up; `--final` starts a
// backfill of the covered hours, waits until they are finalized, and requires every point final.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { HOUR_MS, hourOf, isoSeconds } from '../common/time.js';
import { diffCounts, totalOf, type GroundTruth } from './ground-truth.js';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    final: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '600' },
  },
});
if (!positionals[0])
  throw new Error('usage: npm run verify -- <ground truth file> [--final] [--timeout seconds]');
const truth = JSON.parse(readFileSync(positionals[0], 'utf8')) as GroundTruth;
const base = truth.baseUrl;
const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' };
const from = hourOf(truth.startedAt);
const to = hourOf(truth.endedAt) + HOUR_MS;

interface ClicksReply {
  points: { start: string; clicks: number; final: boolean }[];
}

async function get<T>(path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: admin });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path} → ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** What the API reports now: counts per ad and minute, and whether every point was final. */
async function reported(): Promise<{ counts: Record<string, Record<string, number>>; allFinal: boolean }> {
  const counts: Record<string, Record<string, number>> = {};
  let allFinal = true;
  for (const { adId } of truth.ads) {
    const r = await get<ClicksReply>(
      `/v1/ads/${adId}/clicks?granularity=minute&from=${isoSeconds(from)}&to=${isoSeconds(to)}`,
    );
    const perAd: Record<string, number> = {};
    for (const p of r.points) {
      if (p.clicks !== 0) perAd[p.start] = p.clicks;
      allFinal &&= p.final;
    }
    counts[adId] = perAd;
  }
  return { counts, allFinal };
}

async function main(): Promise<void> {
  const deadline = Date.now() + Number(opts.timeout) * 1000;
  if (opts.final) {
    const res = await fetch(`${base}/v1/admin/backfills`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ from: isoSeconds(from), to: isoSeconds(to) }),
    });
    console.log(
      `[verify] backfill ${isoSeconds(from)} → ${isoSeconds(to)}: ${res.status} ${await res.text()}`,
    );
  }
  let last = { counts: {} as Record<string, Record<string, number>>, allFinal: false };
  for (;;) {
    last = await reported();
    const diffs = diffCounts(truth.counts, last.counts);
    const done = diffs.length === 0 && (!opts.final || last.allFinal);
    if (done) {
      console.log(
        `[verify] exact match: ${totalOf(truth.counts)} valid clicks over ${truth.ads.length} ads, ` +
          `${opts.final ? 'all points final' : 'provisional and final points'}`,
      );
      return;
    }
    if (Date.now() > deadline) {
      console.log(`[verify] MISMATCH after ${opts.timeout} s: ${diffs.length} (ad, minute) differences`);
      for (const d of diffs.slice(0, 50))
        console.log(`  ad ${d.adId} ${d.minute}: expected ${d.expected}, reported ${d.reported}`);
      if (opts.final && !last.allFinal)
        console.log('  (some points are still provisional: hours not finalized)');
      process.exitCode = 1;
      return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

main().catch((e: Error) => {
  console.error(`[verify] ${e.message}`);
  process.exit(1);
});
