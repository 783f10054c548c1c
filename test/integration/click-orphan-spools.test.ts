// Orphan spools and a restart of worker 0 (issue 24, item 6), with the real click process
// (`apps/click.ts`: primary + cluster worker) on a private topic, spool folder and port. An orphan
// spool (worker 3 of an earlier, larger run) is held by another process when worker 0 starts and
// again when the killed worker 0 is restarted; then that process dies with its lock fresh. Its clicks
// must reach Kafka: worker 0 keeps trying and takes the lock over once it is stale. (The old worker
// 0 tried once per start and left the spool on disk until the next full restart.)
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../common/kafka.js';
import { clickTopic } from '../support/click.js';
import { killHard, leaveSpoolInChild } from '../support/spool.js';
import { waitFor } from '../../common/wait.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** waitFor (common/wait.ts), polling every 100 ms, with the click process's output in the failure. */
const waitWithOutput = (
  what: string,
  cond: () => boolean,
  ms: number,
  output: () => string,
): Promise<boolean> =>
  waitFor(what, cond, ms, 100).catch((e: Error) => {
    throw new Error(`${e.message}; click process output:\n${output()}`);
  });

/** The click process's worker (it runs one; tsx's esbuild service is a child too). */
async function workerPid(primary: number): Promise<number> {
  const { stdout } = await run('ps', ['-o', 'pid=,args=', '--ppid', String(primary)]);
  const pids = stdout
    .split('\n')
    .filter((l) => l.includes('apps/click.ts'))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
  if (pids.length !== 1) throw new Error(`expected one click worker, found:\n${stdout}`);
  return pids[0]!;
}

describe('orphan spools across a restart of click worker 0', () => {
  const kafka = createKafka('click-orphan-spools-test', { quiet: true });
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('an orphan spool whose owner dies after worker 0 restarted is adopted and its clicks reach Kafka', async () => {
    const topic = `clicks-test-${randomUUID()}`;
    const io = await clickTopic(kafka, topic);
    cleanups.push(() => io.drop());
    const dir = join(tmpdir(), `adclick-orphans-${randomUUID()}`);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    // Worker 3 of an earlier run: 200 clicks spooled, its process still holding the lock.
    const orphan = join(dir, 'spool-3.log');
    const left = await leaveSpoolInChild(orphan, 200, 0, []);
    cleanups.push(() => killHard(left.child));

    const port = await freePort();
    const metric = async (name: string): Promise<number | undefined> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    };
    const click: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'apps/click.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        ADCLICK_CLICK_WORKERS: '1',
        ADCLICK_SPOOL_DIR: dir,
        KAFKA_CLICKS_TOPIC: topic,
        ADCLICK_PROGRESS_REPORT_MS: '60000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    click.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    click.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    cleanups.push(async () => {
      const gone = new Promise((r) => click.once('exit', r));
      click.kill('SIGTERM');
      const t = setTimeout(() => click.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    });
    const lockedNotes = () => [...output.matchAll(/spool-3\.log is (owned|locked) by another/g)].length;

    // Worker 0 finds the orphan locked by its live owner and leaves it for now.
    await waitWithOutput(
      'worker 0 to see the locked orphan',
      () => lockedNotes() >= 1,
      60_000,
      () => output,
    );
    // Worker 0 dies (kill -9) and is restarted; the new one finds the orphan locked again.
    const before = lockedNotes();
    process.kill(await workerPid(click.pid!), 'SIGKILL');
    await waitWithOutput(
      'worker 0 to be restarted',
      () => /click worker 0 exited/.test(output),
      10_000,
      () => output,
    );
    await waitWithOutput(
      'the restarted worker 0 to see the locked orphan',
      () => lockedNotes() > before,
      60_000,
      () => output,
    );
    // Held by its owner, the orphan is still in /metrics.
    expect(await metric('adclick_spool_orphans{state="waiting"}'), output).toBe(1);
    // Nothing of it replayed yet: the whole file (its torn last write included) is waiting.
    expect(await metric('adclick_spool_orphan_waiting_bytes')).toBe((await stat(orphan)).size);
    // Now the orphan's owner dies with its lock fresh. Its 200 clicks must reach Kafka.
    await killHard(left.child);
    const logged = await io.readAll(200, { timeoutMs: 40_000, settleMs: 1000 });
    const ids = logged.map((l) => l.event.eventId);
    expect(new Set(ids), output).toEqual(new Set(left.events.map((e) => e.eventId)));
    expect(ids).toHaveLength(200);
    expect(output).toMatch(/adopted .*spool-3\.log/);
    expect(await metric('adclick_spool_orphans{state="adopted"}')).toBe(1);
    expect(await metric('adclick_spool_orphans{state="waiting"}')).toBe(0);
    expect(await metric('adclick_spool_depth')).toBe(0);
  }, 150_000);
});
