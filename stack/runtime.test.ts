// A service started through a wrapper that execs it (PostgreSQL as root: `setpriv … -- postgres …`)
// is recognised as running: /proc shows the program, not the wrapper. Failed on a fresh stack before
// ("postgres exited during start" while it served).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runsCommand } from './runtime.js';
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
