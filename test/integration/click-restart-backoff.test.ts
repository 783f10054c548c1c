// A click worker that keeps dying (here: its port is taken) is restarted with a growing delay, not
// every 500 ms for ever with a core at 100 % (what a second `npm start` used to cause).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from './faults-support.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

describe('click process supervision', () => {
  it('restarts a worker that keeps dying with backoff', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/click.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        ADCLICK_CLICK_WORKERS: '1',
        ADCLICK_SPOOL_DIR: join(tmpdir(), `adclick-backoff-${randomUUID()}`),
        ADCLICK_PROGRESS_REPORT_MS: '60000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const delays = (): number[] =>
      [...output.matchAll(/click worker 0 exited .*; restarting it in (\d+) ms/g)].map((m) => Number(m[1]));
    try {
      // Each start of a worker takes seconds on a busy machine: wait for three restarts, not a fixed time.
      await waitFor('three restarts of worker 0', async () => delays().length >= 3, 90_000).catch(
        (e: Error) => expect.fail(`${e.message}:\n${output}`),
      );
    } finally {
      child.kill('SIGKILL');
      taken.close();
    }
    // Old behaviour: a restart every 500 ms for ever. Now each wait is longer than the one before.
    const d = delays();
    for (let i = 1; i < d.length; i++) expect(d[i], output).toBeGreaterThan(d[i - 1]!);
  }, 120_000);
});
