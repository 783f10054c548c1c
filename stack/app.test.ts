// One supervisor per checkout: a second `npm start` finds the first and refuses; a dead, zombie or
// unrelated recorded PID does not hold the claim.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appEnv, claimSupervisor, releaseSupervisor } from './app.js';

describe('supervisor claim', () => {
  const dirs: string[] = [];
  const stackDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'adclick-supervisor-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('refuses while another live supervisor holds the checkout, and takes it once that one is gone', async () => {
    const dir = stackDir();
    // A stand-in for a running `tsx stack/cli.ts start`: its command line names stack/cli.ts.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', 'stack/cli.ts', 'start'], {
      stdio: 'ignore',
    });
    await new Promise((r) => other.once('spawn', r));
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(join(dir, 'run', 'app.pid'), String(other.pid));
    expect(claimSupervisor(dir)).toBe(other.pid);
    other.kill('SIGKILL');
    await new Promise((r) => other.once('exit', r));
    expect(claimSupervisor(dir)).toBeUndefined();
    releaseSupervisor(dir);
  });

  it('a recorded PID that runs another program does not count', () => {
    const dir = stackDir();
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(join(dir, 'run', 'app.pid'), '1'); // init, not a supervisor
    expect(claimSupervisor(dir)).toBeUndefined();
  });
});

describe('appEnv', () => {
  it("gives the click process V8's default young generation and the consumers the larger one", () => {
    const semiSpace = (name: string): string | undefined => appEnv({}, name).NODE_OPTIONS;
    expect(semiSpace('click')).toBe('--max-semi-space-size=16');
    for (const name of ['api', 'speed-layer', 'archiver', 'worker'])
      expect(semiSpace(name)).toBe('--max-semi-space-size=64');
    expect(appEnv({}, 'click').ADCLICK_CLICK_WORKERS).toBe('1');
  });

  it('leaves what the operator set, for every process', () => {
    const env = appEnv({ NODE_OPTIONS: '--max-old-space-size=512', ADCLICK_CLICK_WORKERS: '2' }, 'click');
    expect(env.NODE_OPTIONS).toBe('--max-old-space-size=512');
    expect(env.ADCLICK_CLICK_WORKERS).toBe('2');
    expect(appEnv({ NODE_OPTIONS: '' }, 'archiver').NODE_OPTIONS).toBe('');
  });
});
