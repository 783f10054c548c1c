// Drains spool files into Kafka for a click process that will not come back (a retired host, a
// removed worker): the library behind `npm run spool:drain` (apps/spool-drain.ts). Safe while the
// system runs: it takes each spool's lock first and leaves a spool a live process owns alone; it
// sends in file order with an idempotent producer and commits after every ack (the spool's marker),
// so an interrupted drain resumes where it stopped and nothing acked is sent again, except the
// at-least-once corner of spool.ts; it deletes a spool only once all of it is acked. Records a late
// ack already delivered are skipped, poison records go to `<spool>.poison`: the replay loop is the
// click log's (spool-replay.ts), and so are the send settings (SpoolSendOptions, built once in apps/).
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressionTypes, type Kafka, type Message, type Producer } from 'kafkajs';
import type { SpoolSendOptions } from './click-log.js';
import { Spool, SpoolLockedError } from './spool.js';
import { poisonLine, replaySpool, REPLAY_BATCH } from './spool-replay.js';
import { sleep } from '../common/wait.js';
import { checkedSends, type CheckedSends } from '../common/checked-sends.js';

export interface DrainOptions extends SpoolSendOptions {
  /** How long to wait for a spool another process holds before leaving it (default 0: at once). */
  lockWaitMs?: number;
  /** Records per Kafka request (default 500, as the click process's replay). */
  batchRecords?: number;
  /** A progress line per spool at most this often (default 2 s). */
  progressEveryMs?: number;
  /** Give a spool up when Kafka has not taken a batch for this long (default 60 s); rerun to go on. */
  giveUpAfterMs?: number;
  /** Stops after the batch in flight; what was acked stays committed. */
  signal?: AbortSignal;
}

/**
 * drained: everything acked, the spool deleted; locked: another process owns it, untouched;
 * interrupted: stopped by the signal; failed: Kafka or the disk failed. The last two keep their
 * progress: run the drain again.
 */
export type DrainStatus = 'drained' | 'locked' | 'interrupted' | 'failed';

export interface DrainReport {
  path: string;
  status: DrainStatus;
  /** Records this run sent to Kafka, each acked. */
  sent: number;
  /** Records skipped because a late Kafka ack of the click process had delivered them already. */
  alreadyDelivered: number;
  /** Records moved to `<spool>.poison`. */
  poison: number;
  /** Damaged bytes skipped, and bytes of a torn last write cut off. */
  corruptBytes: number;
  tornBytes: number;
  error?: string;
}

const RETRY_MS = 1000;

/** The spool files at `target`: the file itself, or the `*.log` files of a folder (by name). */
export async function spoolFilesAt(target: string): Promise<string[]> {
  if (!(await stat(target)).isDirectory()) return [target];
  const entries = await readdir(target, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.log'))
    .map((e) => join(target, e.name))
    .sort();
}

/** Drains the spool file at `target`, or every spool file in the folder `target`, one at a time. */
export async function drainSpools(target: string, opts: DrainOptions): Promise<DrainReport[]> {
  const reports: DrainReport[] = [];
  for (const path of await spoolFilesAt(target)) {
    if (opts.signal?.aborted) break;
    reports.push(await drainSpool(path, opts));
  }
  return reports;
}

/** Drains one spool file into Kafka (see the top comment). */
export async function drainSpool(path: string, opts: DrainOptions): Promise<DrainReport> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const report: DrainReport = {
    path,
    status: 'failed',
    sent: 0,
    alreadyDelivered: 0,
    poison: 0,
    corruptBytes: 0,
    tornBytes: 0,
  };
  let spool: Spool;
  try {
    spool = await Spool.open(path, {
      lockWaitMs: opts.lockWaitMs ?? 0,
      lockStaleMs: opts.spoolLockStaleMs,
      onTornTail: (bytes) => {
        report.tornBytes += bytes;
        log(`${path}: cut off a torn last write of ${bytes} bytes (never acknowledged to a click)`);
      },
      onCorrupt: (offset, bytes) => {
        report.corruptBytes += bytes;
        opts.metrics?.spoolCorruptBytes.inc(bytes);
        log(`${path}: skipped ${bytes} damaged bytes at offset ${offset}; the records in them are lost`);
      },
      onLockLost: (e) => log(e.message),
    });
  } catch (e) {
    report.status = e instanceof SpoolLockedError ? 'locked' : 'failed';
    report.error = (e as Error).message;
    log(`${path}: ${report.status === 'locked' ? 'left alone' : 'cannot open'}: ${report.error}`);
    return report;
  }

  const total = spool.depth;
  log(`${path}: ${total} records (${spool.size - spool.committed} bytes) to drain`);
  const producer = new Sender(opts.kafka, log);
  try {
    await replaySpool(spool, drainHooks(spool, report, producer, opts, log), {
      batchRecords: opts.batchRecords ?? REPLAY_BATCH,
      metrics: opts.metrics,
    });
    if (report.status !== 'interrupted') {
      if (!(await spool.removeIfDrained())) throw new Error('records were appended while draining');
      report.status = 'drained';
    }
  } catch (e) {
    report.status = 'failed';
    report.error = (e as Error).message;
  } finally {
    await spool.close().catch(() => undefined); // no-op once removed; releases the lock otherwise
    await producer.disconnect();
  }
  log(summaryLine(report));
  return report;
}

/** The drain's part of the replay: stop when interrupted, fail on any error, count and report progress. */
function drainHooks(
  spool: Spool,
  report: DrainReport,
  producer: Sender,
  opts: DrainOptions,
  log: (line: string) => void,
): Parameters<typeof replaySpool>[1] {
  const { path } = report;
  const total = spool.depth;
  const started = Date.now();
  let lastProgress = started;
  return {
    ready: async () => {
      if (!opts.signal?.aborted || !spool.pending) return true;
      report.status = 'interrupted';
      return false;
    },
    send: (messages) => producer.send(messages, opts, log),
    caughtUp: async () => true,
    failed: (_step, e) => Promise.reject(e),
    poisoned: (poison) => log(`${path}: ${poisonLine(path, poison)}`),
    replayed: (batch) => {
      report.sent += batch.sent;
      report.poison += batch.poison;
      report.alreadyDelivered += batch.alreadyDelivered;
      if (Date.now() - lastProgress < (opts.progressEveryMs ?? 2000)) return;
      lastProgress = Date.now();
      const done = total - spool.depth;
      const rate = Math.round(report.sent / ((lastProgress - started) / 1000));
      log(`${path}: ${done} of ${total} records done (${Math.floor((100 * done) / total)}%), ${rate}/s`);
    },
  };
}

export function summaryLine(r: DrainReport): string {
  const counts =
    `${r.sent} sent, ${r.alreadyDelivered} already delivered, ${r.poison} poison, ` +
    `${r.corruptBytes} damaged bytes skipped, ${r.tornBytes} torn bytes cut`;
  const outcome = {
    drained: 'drained and deleted',
    locked: 'left alone (owned by a running process)',
    interrupted: 'interrupted (progress kept: run again to go on)',
    failed: 'failed (progress kept: run again to go on)',
  }[r.status];
  return `${r.path}: ${outcome}: ${counts}${r.error ? ` (${r.error})` : ''}`;
}

/** An idempotent producer that retries a batch until Kafka takes it, for up to giveUpAfterMs. */
class Sender {
  private producer: Producer | undefined;
  private readonly checked: CheckedSends;
  constructor(
    private readonly kafka: Kafka,
    log: (line: string) => void,
  ) {
    this.checked = checkedSends(log);
  }

  async send(messages: Message[], opts: DrainOptions, log: (line: string) => void): Promise<void> {
    const deadline = Date.now() + (opts.giveUpAfterMs ?? 60_000);
    const compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    for (;;) {
      try {
        this.producer ??= await this.connect();
        await this.checked.send(this.producer, { topic: opts.topic, acks: -1, compression, messages });
        return;
      } catch (e) {
        // A send that failed for good may leave the producer's sequence numbers stale: start afresh.
        await this.disconnect();
        if (Date.now() >= deadline || opts.signal?.aborted) throw e;
        log(`Kafka did not take a batch (${(e as Error).message}); retrying in ${RETRY_MS / 1000} s`);
        await sleep(RETRY_MS);
      }
    }
  }

  async disconnect(): Promise<void> {
    const p = this.producer;
    this.producer = undefined;
    await p?.disconnect().catch(() => undefined);
  }

  private async connect(): Promise<Producer> {
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: this.checked.createPartitioner,
    });
    await producer.connect();
    return producer;
  }
}
