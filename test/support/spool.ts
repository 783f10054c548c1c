// Helpers for the spool's integration tests: click events to spool, and a child process that leaves
// a spool behind the way a click process killed with SIGKILL would (records appended and fsynced, part
// of them replayed and committed, some delivered by late acks, a torn last write, the lock held).
// Run directly, this file is that child: `node --import tsx test/support/spool.ts <spool> <records> <committed> <delivered,…>`.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { encodeClickEvent, saltOf, type ClickEvent } from '../../common/click-event.js';
import { Spool } from '../../ingest/spool.js';
import { encodeRecord } from '../../ingest/spool-format.js';

/** `n` valid click events with fresh impression ids. */
export function clickEvents(n: number, adId = '1', advertiserId = '1'): ClickEvent[] {
  return Array.from({ length: n }, () => {
    const eventId = randomUUID();
    return { v: 1, eventId, adId, advertiserId, ts: Date.now(), status: 'valid', salt: saltOf(eventId, 8) };
  });
}

export interface LeftSpool {
  /** Every event appended, in spool order. */
  events: ClickEvent[];
  /** The child, still holding the spool's lock: kill it. */
  child: ChildProcess;
}

/**
 * Starts a child that appends `records` events to the spool at `path` (in batches of 100, each
 * fsynced), commits the first `committed` as replayed, marks the events at the `delivered` indexes
 * as delivered by a late ack, appends a torn record, and then waits to be killed.
 */
export async function leaveSpoolInChild(
  path: string,
  records: number,
  committed: number,
  delivered: number[],
): Promise<LeftSpool> {
  const self = fileURLToPath(import.meta.url);
  // One process (node with tsx's loader), not the tsx CLI, which would run the script in a grandchild
  // that a SIGKILL of the child leaves alive.
  const args = [self, path, String(records), String(committed), delivered.join(',')];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`spool writer exited (${signal ?? code})`))),
  );
  exited.catch(() => undefined);
  const firstLine = new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once('line', resolve),
  );
  const line = await Promise.race([firstLine, exited]);
  return { events: JSON.parse(line) as ClickEvent[], child };
}

/** Kills `child` with SIGKILL and waits for it to be gone. */
export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

async function childMain(args: string[]): Promise<void> {
  const [path, records, committed, delivered] = args as [string, string, string, string];
  const events = clickEvents(Number(records));
  const spool = await Spool.open(path);
  const offsets: number[] = [];
  for (let i = 0; i < events.length; i += 100) {
    offsets.push(...(await spool.append(events.slice(i, i + 100).map((e) => encodeClickEvent(e)))));
  }
  const c = Number(committed);
  if (c > 0) await spool.commit(c < offsets.length ? offsets[c]! : spool.size, c);
  const late = delivered ? delivered.split(',').map(Number) : [];
  if (late.length > 0) await spool.markDelivered(late.map((i) => offsets[i]!));
  // A kill in the middle of an append leaves part of a record that was never acknowledged.
  const torn = encodeRecord(encodeClickEvent(clickEvents(1)[0]!));
  await appendFile(path, torn.subarray(0, torn.length - 10));
  process.stdout.write(`${JSON.stringify(events)}\n`);
  setInterval(() => undefined, 60_000); // holds the lock until killed
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  childMain(process.argv.slice(2)).catch((e: Error) => {
    console.error(`spool writer failed: ${e.message}`);
    process.exit(1);
  });
}
