// The spool on a disk that fills up: a small tmpfs mounted by the test (we run as root; without the
// right to mount, the test says so and stops). A write that the filesystem cuts short must be
// completed or fail, never be acknowledged half on disk (issue 24, item 5); and a click whose spool
// append failed while Kafka acked its late send is answered as logged, not with a 503 (item 7).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeClickEvent, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { createKafka } from '../../common/kafka.js';
import { ClickLog } from '../../ingest/click-log.js';
import { Spool } from '../../ingest/spool.js';
import { clickTopic } from '../support/click.js';
import { clickEvents } from '../support/spool.js';

const run = promisify(execFile);
const mounted: string[] = [];

/** Mounts a tmpfs of `size` at a new folder; undefined (with the reason printed) if not permitted. */
async function smallDisk(size: string): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'adclick-full-disk-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  } catch (e) {
    console.log(`NOT RUN: cannot mount a tmpfs to fill (${(e as Error).message.trim()}); needs root`);
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  mounted.push(dir);
  return dir;
}

const resize = (dir: string, size: string) => run('mount', ['-o', `remount,size=${size}`, 'tmpfs', dir]);

afterAll(async () => {
  for (const dir of mounted) {
    await run('umount', ['-l', dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

/** Fills the filesystem of `dir` until a write fails with ENOSPC. */
async function fill(dir: string): Promise<void> {
  const fh = await open(join(dir, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(4096, 7);
    for (;;) await fh.write(chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await fh.close();
  }
}

describe('the spool on a full disk', () => {
  it('an append the disk cuts short fails (ENOSPC) and leaves nothing replayable; every acknowledged record is replayed', async () => {
    const dir = await smallDisk('64k');
    if (!dir) return;
    const path = join(dir, 'spool-0.log');
    const spool = await Spool.open(path);
    const acked: ClickEvent[] = [];
    const refused: ClickEvent[] = [];
    let firstError: NodeJS.ErrnoException | undefined;
    // Batches of 100 events (~7 KB, two pages): the one that reaches the end of the disk is cut
    // short by the filesystem part way through.
    for (let i = 0; i < 40; i++) {
      const batch = clickEvents(100);
      try {
        await spool.append(batch.map((e) => encodeClickEvent(e)));
        acked.push(...batch);
      } catch (e) {
        firstError ??= e as NodeJS.ErrnoException;
        refused.push(...batch);
      }
    }
    expect(firstError?.code).toBe('ENOSPC');
    expect(acked.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);

    // Room again: the spool goes on, and a restart replays exactly what was acknowledged.
    await resize(dir, '1m');
    const after = clickEvents(10);
    await spool.append(after.map((e) => encodeClickEvent(e)));
    acked.push(...after);
    await spool.close();

    let damaged = 0;
    let torn = 0;
    const reopened = await Spool.open(path, {
      onCorrupt: (_, bytes) => (damaged += bytes),
      onTornTail: (bytes) => (torn += bytes),
    });
    const replayed: string[] = [];
    while (reopened.pending) {
      const b = await reopened.read(500);
      for (const r of b.records) replayed.push(decodeClickEvent(r.payload).eventId);
      await reopened.commit(b.next, b.frames);
    }
    await reopened.close();
    expect({ damaged, torn }).toEqual({ damaged: 0, torn: 0 });
    expect(replayed).toEqual(acked.map((e) => e.eventId));
  });

  it('a click whose spool append fails while its late send is acked by Kafka is answered as logged (kafka), not as an error', async () => {
    const dir = await smallDisk('64k');
    if (!dir) return;
    const kafka = createKafka('spool-disk-full-test', { quiet: true });
    const topic = `clicks-test-${randomUUID()}`;
    const io = await clickTopic(kafka, topic);
    const messages: string[] = [];
    const log = await ClickLog.open({
      kafka,
      topic,
      spoolPath: join(dir, 'spool-0.log'),
      // No batch can be acked within 1 ms: every send misses its deadline and goes to the spool,
      // which cannot take it; Kafka acks the send a little later.
      deadlineMs: 1,
      lingerMs: 1,
      batchMax: 100,
      lateAckWaitMs: 10_000,
      log: (m) => messages.push(m),
    });
    try {
      await fill(dir);
      const events = clickEvents(5);
      const outcomes = await Promise.all(
        events.map((e) =>
          log.append(e).then(
            (d) => d,
            (err: Error) => `error: ${err.message}`,
          ),
        ),
      );
      const inKafka = await io.readAll(events.length, { settleMs: 1000 });
      // Every event reached Kafka (the late send), so each click must have been answered as logged.
      expect(new Set(inKafka.map((l) => l.event.eventId))).toEqual(new Set(events.map((e) => e.eventId)));
      expect(outcomes).toEqual(events.map(() => 'kafka'));
      expect(messages.some((m) => /spooling click events: Kafka did not ack within 1 ms/.test(m))).toBe(true);
    } finally {
      await log.close(500).catch(() => undefined);
      await io.drop();
    }
  });
});
