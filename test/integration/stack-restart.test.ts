// `stack:up` after a crash, on a private stack (its own folder and a free port, so the shared stack is
// not touched): a recorded PID that is a zombie, or that now runs another program, is "not running",
// and bringing the service up starts it again at once instead of waiting for a health check that
// cannot pass. And `stack:up` right after a stop, while the old process is still exiting (a JVM's
// shutdown takes seconds): it is started again once gone, not waited for until the timeout.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sleep } from '../../common/wait.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// The stack's modules read their folder and addresses from the environment once, on import.
const stackDir = mkdtempSync(join(tmpdir(), 'adclick-stack-test-'));
const port = await freePort();
process.env.ADCLICK_STACK_DIR = stackDir;
process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
process.env.ADCLICK_STACK_QUIET = '1';
const runtime = await import('../../stack/runtime.js');
const { redis } = await import('../../stack/services/redis.js');
const { up } = await import('../../stack/cli.js');
type StackService = import('../../stack/service.js').StackService;

/** What `stack:up` does for one service (stack/cli.ts bringUp): start unless running, wait for health. */
async function bringUp(): Promise<void> {
  if (runtime.runningPid('redis') === undefined) await redis.start();
  await runtime.waitUntil('redis', () => redis.healthy(), 10_000, 'its log');
}

/**
 * Redis under a parent that does not reap its children (like an init that never calls wait): killed
 * with -9, it stays a zombie. perl is in every Debian base system; it waits only when told to.
 */
function startUnderNonReapingParent(): Promise<{ parent: ChildProcess; pid: number; argv: string[] }> {
  const argv = [
    'redis-server',
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
  ];
  const parent = spawn(
    'perl',
    [
      '-e',
      '$| = 1; my $pid = fork // die; if (!$pid) { exec @ARGV or die } print "$pid\\n"; <STDIN>; waitpid($pid, 0);',
      ...argv,
    ],
    { cwd: stackDir, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    parent.once('error', reject);
    parent.stdout!.once('data', (d: Buffer) => resolve({ parent, pid: Number(d.toString().trim()), argv }));
  });
}

/** What /proc says of a process: its state and command line (for a failure message). */
function describeProcess(pid: number): string {
  const cmdline = (() => {
    try {
      return JSON.stringify(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0'));
    } catch (e) {
      return (e as Error).message;
    }
  })();
  return `state ${runtime.procState(pid) ?? 'gone'}, alive ${runtime.isAlive(pid)}, cmdline ${cmdline}`;
}

describe('stack:up after a crash (private stack)', () => {
  const parents: ChildProcess[] = [];
  const forked: number[] = [];
  afterAll(async () => {
    await runtime.stopDetached('redis');
    for (const pid of forked) if (runtime.isAlive(pid)) process.kill(pid, 'SIGKILL');
    for (const p of parents) p.stdin?.end(); // the parent reaps its zombie and exits
    await sleep(200);
    for (const p of parents) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(stackDir, { recursive: true, force: true });
  });

  it('a service killed with -9 that is still a zombie is started again by the next up', async () => {
    const { parent, pid, argv } = await startUnderNonReapingParent();
    parents.push(parent);
    forked.push(pid);
    runtime.recordPid('redis', pid, argv);
    await runtime.waitUntil('redis', () => redis.healthy(), 10_000, 'its log');
    // The precondition: the recorded PID is the running service. It failed once in CI (runningPid
    // undefined 44 ms after the start; not reproduced here in 27 runs, also under load): it is waited
    // for, and if it never holds, the failure says what /proc showed.
    await runtime
      .waitUntil(
        'the recorded PID to be the running service',
        async () => runtime.runningPid('redis') === pid,
        5000,
        '/proc',
      )
      .catch((e: Error) => {
        throw new Error(`${e.message}: PID ${pid} ${describeProcess(pid)}`);
      });
    expect(runtime.runningPid('redis')).toBe(pid);

    process.kill(pid, 'SIGKILL');
    await runtime.waitUntil('the zombie', async () => runtime.procState(pid) === 'Z', 5000, '/proc');
    expect(() => process.kill(pid, 0)).not.toThrow(); // what the old check took for "running"

    const t0 = Date.now();
    await bringUp();
    expect(runtime.runningPid('redis')).not.toBe(pid);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a recorded PID that now runs another program is not the service', async () => {
    await runtime.stopDetached('redis');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    parents.push(other);
    runtime.recordPid('redis', other.pid!, ['redis-server', '--port', String(port)]);
    expect(runtime.runningPid('redis')).toBeUndefined();
    await bringUp();
    expect(runtime.runningPid('redis')).not.toBe(other.pid);
    expect(other.exitCode).toBeNull(); // never signalled: it is not ours
  });
});

describe('stack:up right after a stop (private stack)', () => {
  const name = 'exiting-probe';
  afterAll(async () => {
    await runtime.stopDetached(name);
  });

  it('starts a service whose old process was still exiting, instead of waiting for it to time out', async () => {
    const servicePort = await freePort();
    const service: StackService = {
      name,
      address: `127.0.0.1:${servicePort}`,
      startupTimeoutMs: 20_000,
      install: async () => undefined,
      start: async () => {
        runtime.startDetached(name, process.execPath, [
          '-e',
          `require('node:net').createServer().listen(${servicePort}, '127.0.0.1')`,
        ]);
      },
      healthy: () => runtime.tcpOpen('127.0.0.1', servicePort),
    };
    // The old process: recorded as the service, alive for two more seconds, never answering.
    runtime.startDetached(name, 'sleep', ['2']);
    const t0 = Date.now();
    await up(true, [service]);
    expect(await runtime.tcpOpen('127.0.0.1', servicePort)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
