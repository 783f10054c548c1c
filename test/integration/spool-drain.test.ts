// The spool against the real Kafka: replay past a damaged frame and a poison record, replay that
// survives a failing read, and the drain command (apps/spool-drain.ts) on a spool left by a process
// killed with SIGKILL. Each test reads its private topic back and checks every count exactly.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { open, readdir, readFile, rm, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { createKafka } from '../../common/kafka.js';
import { registry } from '../../common/metrics.js';
import { ClickLog } from '../../ingest/click-log.js';
import { clickMetrics } from '../../ingest/metrics.js';
import { drainSpools } from '../../ingest/spool-drain.js';
import { Spool } from '../../ingest/spool.js';
import { decodeRecords, HEADER_BYTES } from '../../ingest/spool-format.js';
import { clickTopic, tempSpoolPath, type LoggedClick } from '../support/click.js';
import { clickEvents, killHard, leaveSpoolInChild } from '../support/spool.js';
import { withDeadline } from '../../common/wait.js';

const run = promisify(execFile);

async function counterValue(name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  return metric ? ((await metric.get()).values[0]?.value ?? 0) : 0;
}

/** Each event id once, in a set equal to `expected`'s. */
function expectExactlyOnce(logged: LoggedClick[], expected: ClickEvent[]): void {
  const ids = logged.map((l) => l.event.eventId);
  expect(ids).toHaveLength(expected.length);
  expect(new Set(ids).size).toBe(ids.length);
  expect(new Set(ids)).toEqual(new Set(expected.map((e) => e.eventId)));
}

describe('spool replay and drain against Kafka', () => {
  const kafka = createKafka('spool-drain-test', { quiet: true });
  const drops: Array<() => Promise<void>> = [];
  const folders: string[] = [];
  const spoolIn = (name?: string): string => {
    const path = tempSpoolPath(name);
    folders.push(dirname(path));
    return path;
  };
  afterAll(async () => {
    for (const d of drops) await d();
    for (const f of folders) await rm(f, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function newTopic() {
    const topic = `clicks-test-${randomUUID()}`;
    const io = await clickTopic(kafka, topic);
    drops.push(io.drop);
    return { topic, io };
  }

  it('replay skips a corrupt frame and moves a poison record aside; every other record reaches Kafka exactly once', async () => {
    const { topic, io } = await newTopic();
    const spoolPath = spoolIn();
    const events = clickEvents(60);
    const poison = Buffer.from(JSON.stringify({ ...events[20], v: 2 })); // passes its CRC, not a v1 event
    const spool = await Spool.open(spoolPath);
    const offsets = await spool.append(events.map((e, i) => (i === 20 ? poison : encodeClickEvent(e))));
    await spool.close();
    const fh = await open(spoolPath, 'r+'); // damage record 40's payload: its CRC fails
    await fh.write(Buffer.from('#@!'), 0, 3, offsets[40]! + HEADER_BYTES + 10);
    await fh.close();

    const metrics = clickMetrics();
    const poisonBefore = await counterValue('adclick_spool_poison_records_total');
    const corruptBefore = await counterValue('adclick_spool_corrupt_bytes_total');
    const messages: string[] = [];
    const log = await ClickLog.open({
      kafka,
      topic,
      spoolPath,
      deadlineMs: 300,
      lingerMs: 1,
      batchMax: 100,
      metrics,
      log: (m) => messages.push(m),
    });
    try {
      await withDeadline(log.whenDrained(), 30_000, 'spool replay: timed out');
    } finally {
      await log.close();
    }
    const expected = events.filter((_, i) => i !== 20 && i !== 40);
    expectExactlyOnce(await io.readAll(expected.length, { settleMs: 1500 }), expected);

    const quarantined = decodeRecords(await readFile(`${spoolPath}.poison`), 0);
    expect(quarantined.records.map((r) => r.payload)).toEqual([poison]);
    expect((await counterValue('adclick_spool_poison_records_total')) - poisonBefore).toBe(1);
    expect((await counterValue('adclick_spool_corrupt_bytes_total')) - corruptBefore).toBe(
      offsets[41]! - offsets[40]!,
    );
    expect(messages.some((m) => /moved 1 record\(s\) that are no click event/.test(m))).toBe(true);
    expect(
      messages.some((m) => new RegExp(`skipped \\d+ damaged bytes at offset ${offsets[40]}`).test(m)),
    ).toBe(true);
  });

  it('a failing spool read is logged and retried, not an unhandled rejection that stops replay', async () => {
    const { topic, io } = await newTopic();
    const spoolPath = spoolIn();
    const events = clickEvents(5);
    const spool = await Spool.open(spoolPath);
    await spool.append(events.map((e) => encodeClickEvent(e)));
    await spool.close();
    vi.spyOn(Spool.prototype, 'read').mockRejectedValueOnce(new Error('EIO: i/o error, read (test)'));

    const messages: string[] = [];
    const log = await ClickLog.open({
      kafka,
      topic,
      spoolPath,
      deadlineMs: 300,
      lingerMs: 1,
      batchMax: 100,
      log: (m) => messages.push(m),
    });
    try {
      await withDeadline(log.whenDrained(), 30_000, 'spool replay after a failed read: timed out');
    } finally {
      await log.close();
    }
    expect(messages.some((m) => /cannot read the spool, retrying: EIO/.test(m))).toBe(true);
    expectExactlyOnce(await io.readAll(5, { settleMs: 1000 }), events);
  });

  it('the drain command empties a spool left by a SIGKILLed click process, each record exactly once', async () => {
    const { topic, io } = await newTopic();
    const spoolPath = spoolIn('spool-3.log');
    const dir = dirname(spoolPath);
    // 1,000 records: the first 150 were replayed before the kill, 3 more delivered by late acks.
    const late = [200, 201, 650];
    const left = await leaveSpoolInChild(spoolPath, 1000, 150, late);
    try {
      // While its process lives, the spool is its own: the drain leaves it alone.
      const [refused] = await drainSpools(dir, { kafka, topic, log: () => undefined });
      expect(refused).toMatchObject({ status: 'locked', sent: 0 });
      expect(refused!.error).toMatch(/is locked by another process/);
    } finally {
      await killHard(left.child);
    }
    // The process never comes back: its lock is not refreshed, and goes stale (10 s; not waited here).
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(`${spoolPath}.lock`, longAgo, longAgo);

    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'apps/spool-drain.ts', dir], {
      env: { ...process.env, KAFKA_CLICKS_TOPIC: topic },
      timeout: 60_000,
    });
    const expected = left.events.filter((_, i) => i >= 150 && !late.includes(i));
    expect(stdout).toMatch(/850 records \(\d+ bytes\) to drain/);
    expect(stdout).toMatch(
      /drained and deleted: 847 sent, 3 already delivered, 0 poison, 0 damaged bytes skipped, \d+ torn bytes cut/,
    );
    expect(stdout).toMatch(/1 spool file\(s\) at .*: 1 drained, 0 left; 847 click events sent/);
    expectExactlyOnce(await io.readAll(expected.length, { settleMs: 1500 }), expected);
    expect(await readdir(dir)).toEqual([]); // spool, marker and lock gone
  });
});
