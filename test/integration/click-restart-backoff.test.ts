// A click worker that keeps dying (here: its port is taken) is restarted with a growing delay, not
// every 500 ms for ever with a core at 100 % (what a second `npm start` used to cause).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

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
    try {
      await new Promise((r) => setTimeout(r, 12_000));
    } finally {
      child.kill('SIGKILL');
      taken.close();
    }
    const delays = [...output.matchAll(/click worker 0 exited .*; restarting it in (\d+) ms/g)].map((m) =>
      Number(m[1]),
    );
    expect(delays.length, output).toBeGreaterThanOrEqual(2);
    // Old behaviour: ~20 restarts 500 ms apart in 12 s. Now each wait doubles.
    expect(delays.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThan(delays[i - 1]!);
  }, 30_000);
});
