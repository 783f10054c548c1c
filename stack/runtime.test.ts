// A service started through a wrapper that execs it (PostgreSQL as root: `setpriv … -- postgres …`)
// is recognised as running: /proc shows the program, not the wrapper. Failed on a fresh stack before
// ("postgres exited during start" while it served).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runsCommand, withPriority } from './runtime.js';
import { sleep } from '../common/wait.js';

describe('runsCommand', () => {
  it('sees through setpriv to the program it execs, and still tells another program apart', async () => {
    const child = spawn('setpriv', ['--reuid=0', '--', 'sleep', '30'], { stdio: 'ignore' });
    await sleep(300);
    try {
      expect(runsCommand(child.pid!, ['setpriv', '--reuid=0', '--', 'sleep', '30'])).toBe(true);
      expect(runsCommand(child.pid!, ['setpriv', '--reuid=0', '--', 'sleep', '31'])).toBe(false);
      expect(runsCommand(child.pid!, ['redis-server', '--port', '1'])).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('withPriority', () => {
  it('starts a background process niced, recognised as the program it runs; the rest as they are', async () => {
    const env = { ADCLICK_BACKGROUND_NICE: '7' };
    expect(withPriority('sleep', ['30'], false, env)).toEqual(['sleep', ['30']]);
    expect(withPriority('sleep', ['30'], true, { ADCLICK_BACKGROUND_NICE: '0' })).toEqual(['sleep', ['30']]);
    const [file, args] = withPriority('sleep', ['30'], true, env);
    const child = spawn(file, args, { stdio: 'ignore' });
    await sleep(300);
    try {
      // /proc/<pid>/stat: the 19th field is the nice value (after the command in parentheses).
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect(Number(fields[16])).toBe(7);
      expect(runsCommand(child.pid!, ['sleep', '30'])).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
