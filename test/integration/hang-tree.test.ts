// The fault matrix's "hung" fault (faults-support.ts hangProcessTree): SIGSTOP of a service's whole
// process tree, checked in /proc. A child that exited just before its parent was stopped is a
// zombie until the parent reaps it, which a stopped parent cannot do: such a child runs nothing and
// must count as stopped (a fresh machine's CI failed the PostgreSQL hung cell on one, most likely an
// autovacuum worker or the backend of a closed connection).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../common/wait.js';
import { hangProcessTree, procState, processTree } from './faults-support.js';

describe('hangProcessTree', () => {
  it('stops a tree holding an unreaped child, and continues it after the hang', async () => {
    // sh starts `true` in the background, then becomes `sleep`, which never reaps it: a zombie child.
    const parent = spawn('sh', ['-c', 'true & exec sleep 30'], { stdio: 'ignore' });
    const pid = parent.pid!;
    try {
      const zombie = await waitFor(
        'the unreaped child',
        async () => processTree(pid).find((p) => p !== pid && procState(p) === 'Z'),
        5000,
        20,
      );
      const hung = hangProcessTree(pid, 'sleep', 300);
      await waitFor('the parent to be stopped', async () => procState(pid) === 'T', 2000, 10);
      expect(procState(zombie)).toBe('Z');
      const r = await hung;
      expect(r.evidence).toMatch(
        /^pid \d+ and 0 descendants in state T \(stopped\) for 0\.3 s, then SIGCONT$/,
      );
      await waitFor('the parent to run again', async () => procState(pid) === 'S', 2000, 10);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
