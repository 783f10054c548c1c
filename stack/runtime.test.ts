// A service started through a wrapper that execs it (PostgreSQL as root: `setpriv … -- postgres …`)
// is recognised as running: /proc shows the program, not the wrapper. Failed on a fresh stack before
// ("postgres exited during start" while it served).
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import {
  backgroundNice,
  isAlive,
  lowerSessionGroup,
  runsCommand,
  startDetached,
  stopDetached,
  withPriority,
} from './runtime.js';
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

// With autogroups on, a process in a session of its own is a scheduling group of its own, weighed by
// the group's nice: its threads' nice alone does not make it yield to the click process.
const groupNice = (pid: number): number =>
  Number(/nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))![1]);

describe('lowerSessionGroup', () => {
  it('gives a detached background process the background nice as its group weight too', async () => {
    expect(existsSync('/proc/self/autogroup'), 'this test needs a Linux kernel with autogroups').toBe(true);
    const env = { ADCLICK_BACKGROUND_NICE: '7' };
    const start = (): ChildProcess => {
      const [file, args] = withPriority('sleep', ['30'], true, env);
      return spawn(file, args, { stdio: 'ignore', detached: true });
    };
    const niced = start();
    const grouped = start();
    try {
      await sleep(200);
      // `nice` alone: the thread at 7, its session's group at 0, an equal of every other session.
      expect(groupNice(niced.pid!)).toBe(0);
      lowerSessionGroup(grouped.pid!, env);
      expect(groupNice(grouped.pid!)).toBe(7);
      lowerSessionGroup(grouped.pid!, { ADCLICK_BACKGROUND_NICE: '0' });
      expect(groupNice(grouped.pid!)).toBe(7);
    } finally {
      niced.kill('SIGKILL');
      grouped.kill('SIGKILL');
    }
  });
});

describe('stopDetached', () => {
  it('stops a stopped (SIGSTOP) service with its SIGTERM, not after the grace period', async () => {
    // A drill's hang cut short leaves a service stopped; a stopped process acts on SIGTERM only once
    // continued. Before, `stack:down` waited out the grace and SIGKILLed the group, and PostgreSQL's
    // backends (sessions of their own) stayed stopped, holding the shared memory the next start needs.
    const service = `test-stopped-${process.pid}`;
    // A program that handles SIGTERM, as PostgreSQL does (a stopped process's default-action SIGTERM
    // is fatal at once, like SIGKILL).
    const program = "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);";
    const pid = startDetached(service, process.execPath, ['-e', program], { background: true });
    await sleep(200);
    // Started as a background service: niced, and so is its session's scheduling group.
    expect(groupNice(pid)).toBe(backgroundNice());
    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    await stopDetached(service, 4000);
    expect(isAlive(pid)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
