// compactDay: re-compact the 24 hours of a day, then reconcile it with the speed layer.
import { log, sleep, upsertMemo } from '@temporalio/workflow';
import type { CompactHourResult, ReconciliationReport } from '../activities/index.js';
import { dateOf, dayBeforeNominal, hourIso, hoursOfDay, parseDate } from '../common/time.js';
import { awaitComplete } from './compact-hour.js';
import { boundedMap, compactHourCounts, nominalStart, reconcileDay } from './support.js';

/** A day's reconciliation is tried this many times, 15 minutes apart. */
const RECONCILE_ATTEMPTS = 96;

export interface CompactDayInput {
  /** YYYY-MM-DD (UTC). Omitted when started by the daily schedule. */
  date?: string;
  /** Hours compacted at once (default 2). */
  parallelism?: number;
}

export interface CompactDayResult {
  date: string;
  hours: CompactHourResult[];
  reconciliation: ReconciliationReport;
}

export async function compactDay(input: CompactDayInput = {}): Promise<CompactDayResult> {
  const dayStart = input.date ? parseDate(input.date) : dayBeforeNominal(nominalStart('compactDay'));
  const date = dateOf(dayStart);
  const hours = hoursOfDay(dayStart);
  await awaitComplete(hours[hours.length - 1]!, 180, 30);
  // Every hour is recounted against the seen-ids of the hours before it, so late files that landed
  // after an hour's first compaction are now counted exactly once across the day.
  const results = await boundedMap(hours, input.parallelism ?? 2, (h) => compactHourCounts(hourIso(h)));
  // A failed reconciliation (the speed layer down for longer than the activity's retries) is tried
  // again every 15 minutes for a day; the memo says why it waits.
  let reconciliation: ReconciliationReport | undefined;
  for (let attempt = 1; !reconciliation; attempt++) {
    try {
      reconciliation = await reconcileDay(date);
    } catch (e) {
      if (attempt >= RECONCILE_ATTEMPTS) throw e;
      upsertMemo({
        reconciliation: `failed (attempt ${attempt}), retried in 15 min: ${(e as Error).message}`,
      });
      log.warn('reconciliation failed; retried in 15 min', { date, attempt, error: (e as Error).message });
      await sleep('15 minutes');
    }
  }
  upsertMemo({ reconciliation: 'done' });
  log.info('day compacted and reconciled', {
    date,
    batchTotal: reconciliation.batchTotal,
    speedTotal: reconciliation.speedTotal,
    differingAds: reconciliation.differingAds,
  });
  return { date, hours: results, reconciliation };
}
