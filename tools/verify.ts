// Verifier (`npm run verify -- <ground truth file> [--final] [--timeout 600]`): compares the metrics
// API with a simulator's ground truth, per ad and minute, and prints "exact match" or the
// differences. Provisional mode (default) waits for the speed layer to catch up; `--final` starts a
// backfill of the covered hours, waits until they are finalized, and requires every point final.
// `verifyCounts` and `resolveAmbiguous` are exported for the faults test (test/integration/faults.test.ts).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { config } from '../common/config.js';
import { createKafka } from '../common/kafka.js';
import { HOUR_MS, hourOf, isoSeconds } from '../common/time.js';
import {
  diffCounts,
  recordValidClick,
  totalOf,
  type CountDifference,
  type GroundTruth,
} from './ground-truth.js';
import { sleep } from '../common/wait.js';

interface ClicksReply {
  points: { start: string; clicks: number; final: boolean }[];
}

export interface VerifyOptions {
  /** Start a backfill of the covered hours and require every point final. */
  final: boolean;
  timeoutS: number;
  log?: (message: string) => void;
}

export interface VerifyResult {
  exact: boolean;
  allFinal: boolean;
  expectedTotal: number;
  reportedTotal: number;
  /** Up to 50 (ad, minute) differences at the last comparison. */
  diffs: CountDifference[];
  elapsedMs: number;
}

/** What the API reports now: counts per ad and minute, and whether every point was final. */
async function reported(
  truth: GroundTruth,
  from: number,
  to: number,
): Promise<{ counts: Record<string, Record<string, number>>; allFinal: boolean }> {
  const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` };
  const counts: Record<string, Record<string, number>> = {};
  let allFinal = true;
  for (const { adId } of truth.ads) {
    const path = `/v1/ads/${adId}/clicks?granularity=minute&from=${isoSeconds(from)}&to=${isoSeconds(to)}`;
    const res = await fetch(`${truth.baseUrl}${path}`, { headers: admin });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${path} → ${res.status} ${text}`);
    const perAd: Record<string, number> = {};
    for (const p of (JSON.parse(text) as ClicksReply).points) {
      if (p.clicks !== 0) perAd[p.start] = p.clicks;
      allFinal &&= p.final;
    }
    counts[adId] = perAd;
  }
  return { counts, allFinal };
}

async function requestBackfill(truth: GroundTruth, from: number, to: number): Promise<string> {
  const res = await fetch(`${truth.baseUrl}/v1/admin/backfills`, {
    method: 'POST',
    headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ from: isoSeconds(from), to: isoSeconds(to) }),
  });
  return `${res.status} ${await res.text()}`;
}

/**
 * Polls the metrics API until it matches the ground truth exactly (and, with `final`, every point is
 * final), or the timeout passes. The hours compared are those of [startedAt, endedAt] on the run's
 * clock (shifted in failure drills, see ADCLICK_CLOCK_OFFSET_MS).
 */
export async function verifyCounts(truth: GroundTruth, opts: VerifyOptions): Promise<VerifyResult> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const t0 = Date.now();
  const deadline = t0 + opts.timeoutS * 1000;
  const from = hourOf(truth.startedAt);
  const to = hourOf(truth.endedAt) + HOUR_MS;
  const expectedTotal = totalOf(truth.counts);
  let lastBackfill = 0;
  for (;;) {
    // A backfill of the window is idempotent (a running one is joined): asking again every 30 s
    // restarts one that failed because an hour was not archived yet.
    if (opts.final && Date.now() - lastBackfill > 30_000) {
      lastBackfill = Date.now();
      log(
        `[verify] backfill ${isoSeconds(from)} → ${isoSeconds(to)}: ${await requestBackfill(truth, from, to)}`,
      );
    }
    const now = await reported(truth, from, to);
    const diffs = diffCounts(truth.counts, now.counts);
    const exact = diffs.length === 0;
    if ((exact && (!opts.final || now.allFinal)) || Date.now() > deadline) {
      return {
        exact,
        allFinal: now.allFinal,
        expectedTotal,
        reportedTotal: totalOf(now.counts),
        diffs: diffs.slice(0, 50),
        elapsedMs: Date.now() - t0,
      };
    }
    await sleep(2000);
  }
}

/**
 * The ground truth with its ambiguous clicks settled: a valid click whose connection broke after it
 * was sent (the click service was killed) counts if, and only if, the click service logged it — its
 * valid event is then in the clicks topic, in the minute of the event's own ts. A valid click answered
 * 302 in the minute after it was sent (`unsureMinute`) takes its minute from there too, and must be
 * there: `unsureMissing` counts those that are not (a click answered and lost). Read every partition
 * of `topic` to its end; call this once the click service's spool is drained.
 */
export async function resolveAmbiguous(
  truth: GroundTruth,
  topic: string = config.KAFKA_CLICKS_TOPIC,
): Promise<{ truth: GroundTruth; logged: number; notLogged: number; unsureMissing: number }> {
  const ambiguous = truth.ambiguous ?? [];
  const unsure = truth.unsureMinute ?? [];
  if (ambiguous.length + unsure.length === 0) return { truth, logged: 0, notLogged: 0, unsureMissing: 0 };
  const found = await validEventsOf(topic, new Set([...ambiguous, ...unsure].map((a) => a.impressionId)));
  const counts = structuredClone(truth.counts);
  for (const event of found.values()) recordValidClick(counts, event.adId, event.ts);
  const logged = ambiguous.filter((a) => found.has(a.impressionId)).length;
  const unsureMissing = unsure.filter((u) => !found.has(u.impressionId)).length;
  return { truth: { ...truth, counts }, logged, notLogged: ambiguous.length - logged, unsureMissing };
}

/** The first valid event of each impression id in `ids` found in the whole topic. */
async function validEventsOf(topic: string, ids: ReadonlySet<string>): Promise<Map<string, ClickEvent>> {
  const kafka = createKafka(`adclick-verify-${process.pid}`, { quiet: true });
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `adclick-verify-${randomUUID()}`;
  const found = new Map<string, ClickEvent>();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    const endOf = new Map(
      offsets.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high)]),
    );
    if (endOf.size === 0) return found;
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`reading ${topic} took over 120 s`)), 120_000);
        consumer
          .run({
            eachMessage: async ({ partition, message }) => {
              if (message.value) {
                const event = decodeClickEvent(message.value);
                if (event.status === 'valid' && ids.has(event.eventId) && !found.has(event.eventId))
                  found.set(event.eventId, event);
              }
              const end = endOf.get(partition);
              if (end !== undefined && Number(message.offset) + 1 >= end) {
                endOf.delete(partition);
                if (endOf.size === 0) {
                  clearTimeout(timer);
                  resolve();
                }
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
    await admin.deleteGroups([groupId]).catch(() => undefined);
    return found;
  } finally {
    await admin.disconnect();
  }
}

async function main(): Promise<void> {
  const { values: opts, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      final: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '600' },
    },
  });
  if (!positionals[0])
    throw new Error('usage: npm run verify -- <ground truth file> [--final] [--timeout seconds]');
  const { truth, logged, notLogged, unsureMissing } = await resolveAmbiguous(
    JSON.parse(readFileSync(positionals[0], 'utf8')) as GroundTruth,
  );
  if (logged + notLogged > 0)
    console.log(
      `[verify] ${logged + notLogged} unanswered valid clicks: ${logged} were logged, ${notLogged} not`,
    );
  if (unsureMissing > 0) {
    console.log(`[verify] ${unsureMissing} valid clicks answered 302 are not in the clicks topic`);
    process.exitCode = 1;
  }
  const r = await verifyCounts(truth, { final: opts.final, timeoutS: Number(opts.timeout) });
  if (r.exact && (!opts.final || r.allFinal)) {
    console.log(
      `[verify] exact match: ${r.expectedTotal} valid clicks over ${truth.ads.length} ads, ` +
        `${opts.final ? 'all points final' : 'provisional and final points'}`,
    );
    return;
  }
  console.log(
    `[verify] MISMATCH after ${opts.timeout} s: expected ${r.expectedTotal}, reported ${r.reportedTotal}; ` +
      `${r.diffs.length} (ad, minute) differences shown`,
  );
  for (const d of r.diffs)
    console.log(`  ad ${d.adId} ${d.minute}: expected ${d.expected}, reported ${d.reported}`);
  if (opts.final && !r.allFinal) console.log('  (some points are still provisional: hours not finalized)');
  process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => {
    console.error(`[verify] ${e.message}`);
    process.exit(1);
  });
}
