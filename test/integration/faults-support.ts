// Process plumbing for the faults test: the app's processes as children (each in its own process
// group, so `kill -9` takes a click service's cluster workers with it), supervised the way `npm
// start` supervises them (an unexpected exit is restarted), their output in log files; stopping and
// starting the shared Kafka and Redis of the local stack; small waits and probes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { StackService } from '../../stack/service.js';
import { kafka as kafkaService } from '../../stack/services/kafka.js';
import { postgres as postgresService } from '../../stack/services/postgres.js';
import { redis as redisService } from '../../stack/services/redis.js';
import { isAlive, logFile, procState, runningPid, stopDetached, waitUntil } from '../../stack/runtime.js';
import { sleep, waitFor } from '../../common/wait.js';
import { appProcesses } from '../../stack/app.js';
import { lowerSessionGroup, withPriority } from '../../stack/runtime.js';

// The one sleep and poll of the repository, for the tests that import them from here.
export { sleep, waitFor };

export const ROOT = resolve(import.meta.dirname, '..', '..');

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => ok(port));
    });
  });
}

/** One app process (`node --import tsx <entry>`), restarted on an exit the test did not cause. */
export class AppProcess {
  private child?: ChildProcess;
  private exited: Promise<void> = Promise.resolve();
  private intentional = false;
  private stopped = false;
  private readonly out: WriteStream;
  private readonly recent: string[] = [];
  private lineWaiters: Array<{ re: RegExp; done: () => void }> = [];
  private lineCount = 0;
  /** Exits the test did not cause (each was restarted, as `npm start` would). */
  readonly unexpectedExits: string[] = [];
  starts = 0;

  constructor(
    readonly name: string,
    private readonly entry: string,
    private env: Record<string, string>,
    logDir: string,
    private readonly args: string[] = [],
    /** Restart on an exit the test did not cause (false for a run-to-completion tool). */
    private readonly supervised = true,
  ) {
    mkdirSync(logDir, { recursive: true });
    this.out = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the exit code once the current run ends. */
  async exitCode(): Promise<number | null> {
    await this.exited;
    return this.child?.exitCode ?? null;
  }

  /** Starts the process; `readyLine` (if given) must appear in its output within the timeout. */
  async start(
    opts: { env?: Record<string, string>; readyLine?: RegExp; timeoutMs?: number } = {},
  ): Promise<void> {
    if (opts.env) this.env = { ...this.env, ...opts.env };
    this.intentional = false;
    this.starts++;
    const since = this.lineCount;
    // At the priority npm start gives it (stack/app.ts): stream and batch processors run niced.
    const background = appProcesses.find((p) => p.entry === this.entry)?.background ?? false;
    const [file, argv] = withPriority(
      process.execPath,
      ['--import', 'tsx', this.entry, ...this.args],
      background,
    );
    const child = spawn(file, argv, {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: kill -9 reaches cluster workers too
    });
    // A session of its own is a scheduling group of its own: niced as a group too (stack/runtime.ts).
    if (background && child.pid !== undefined) lowerSessionGroup(child.pid);
    this.child = child;
    this.note(`--- start #${this.starts} (pid ${child.pid}) ---`);
    for (const stream of [child.stdout!, child.stderr!])
      createInterface({ input: stream }).on('line', (line) => this.note(line));
    this.exited = new Promise((resolveExit) =>
      child.once('exit', (code, signal) => {
        this.note(`--- exited (${signal ?? code}) ---`);
        resolveExit();
        if (!this.supervised || this.intentional || this.stopped || this.child !== child) return;
        this.unexpectedExits.push(`${new Date().toISOString()} ${signal ?? code}`);
        setTimeout(() => {
          if (!this.stopped && this.child === child) void this.start().catch(() => undefined);
        }, 1000);
      }),
    );
    if (!opts.readyLine) return;
    const ready = this.waitForLine(opts.readyLine, opts.timeoutMs ?? 90_000, since);
    if (this.supervised) return ready; // an early exit is restarted: keep waiting
    const exited = this.exited.then(() => {
      throw new Error(`${this.name} exited (${child.exitCode}) before it was ready:\n${this.tail()}`);
    });
    // The loser of the race must not surface later as an unhandled rejection.
    ready.catch(() => undefined);
    exited.catch(() => undefined);
    await Promise.race([ready, exited]);
  }

  /** `kill -9` of the whole process group; resolves once the main process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    this.intentional = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await this.exited;
  }

  /** Final cleanup: kill and never restart. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill9();
    this.out.end();
  }

  /** Resolves when a line matching `re` appears (counting lines from number `since` on). */
  waitForLine(re: RegExp, timeoutMs: number, since = this.lineCount): Promise<void> {
    const seen = this.recent.slice(Math.max(0, this.recent.length - (this.lineCount - since)));
    if (seen.some((l) => re.test(l))) return Promise.resolve();
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w.done !== done);
        fail(
          new Error(
            `${this.name}: no line matching ${re} within ${timeoutMs / 1000} s; last lines:\n${this.tail()}`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        ok();
      };
      this.lineWaiters.push({ re, done });
    });
  }

  tail(n = 30): string {
    return this.recent.slice(-n).join('\n');
  }

  private note(line: string): void {
    this.out.write(`${new Date().toISOString()} ${line}\n`);
    // A process that forks workers (the click process) restarts a dead one itself: that is an exit
    // too, seen only in its log ("click worker 1 exited (1); restarting it ...").
    if (/\bworker \d+ exited\b/i.test(line)) this.unexpectedExits.push(`${new Date().toISOString()} ${line}`);
    this.recent.push(line);
    if (this.recent.length > 500) this.recent.shift();
    this.lineCount++;
    for (const w of [...this.lineWaiters]) {
      if (w.re.test(line)) {
        this.lineWaiters = this.lineWaiters.filter((x) => x !== w);
        w.done();
      }
    }
  }
}

/** Stops a service of the shared local stack (SIGTERM to the process group it recorded). */
export async function stopStackService(service: StackService): Promise<void> {
  if (runningPid(service.name) === undefined)
    throw new Error(
      `${service.name} is not run by the local stack (npx tsx stack/cli.ts up): cannot stop it`,
    );
  await stopDetached(service.name);
}

/** Starts a service of the shared local stack and waits until it answers. */
export async function startStackService(service: StackService): Promise<void> {
  await service.start();
  await waitUntil(
    service.name,
    () => service.healthy().catch(() => false),
    service.startupTimeoutMs,
    logFile(service.name),
  );
}

/** Whatever happened, leaves Kafka and Redis running for everyone else (started again if down). */
export async function ensureStackServicesUp(): Promise<void> {
  for (const service of [redisService, kafkaService]) {
    const healthy = runningPid(service.name) !== undefined && (await service.healthy().catch(() => false));
    if (!healthy) await startStackService(service);
  }
}

export { kafkaService, postgresService, redisService };

/**
 * Sends `signal` to the whole process group of a service of the local stack: SIGKILL is a crash
 * (PostgreSQL's backends die with their postmaster), SIGSTOP a hang (connections stay open, nothing
 * answers), SIGCONT its end.
 */
export function signalStackService(service: StackService, signal: NodeJS.Signals): void {
  const pid = runningPid(service.name);
  if (pid === undefined)
    throw new Error(
      `${service.name} is not run by the local stack (npx tsx stack/cli.ts up): cannot signal it`,
    );
  // Its children too: PostgreSQL's backends each start a session of their own (not in the group).
  for (const p of [...descendants(pid), pid]) {
    try {
      process.kill(p, signal);
    } catch {
      // gone meanwhile
    }
  }
}

/** PIDs of every process below `root` (from /proc), children first. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while listed
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const child of children.get(pid) ?? []) {
      walk(child);
      out.push(child);
    }
  };
  walk(root);
  return out;
}

/** Sum of a Prometheus metric (all label sets) from a /metrics text, or undefined if absent. */
export function metricValue(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

// ---- Faults of the local stack's services, for the fault matrix (fault-matrix-support.ts) ----

/** The recorded PID of a running stack service, or an error saying the stack does not run it. */
export function stackPid(service: StackService): number {
  const pid = runningPid(service.name);
  if (pid === undefined)
    throw new Error(`${service.name} is not run by the local stack (npx tsx stack/cli.ts up)`);
  return pid;
}

/**
 * `kill -9` of a stack service's process (the recorded PID only, as an operator's kill would), then
 * started again by the stack's own code (service.start, retried while the old process's leftovers —
 * PostgreSQL's backends, a port in TIME_WAIT — keep the new one from starting). Returns the evidence.
 */
export async function killAndRestartStackService(
  service: StackService,
  opts: {
    downMs?: number;
    /** Kept down until this says so (checked every 250 ms), at most `downMaxMs` (default 15 s). */
    downUntil?: () => boolean;
    downMaxMs?: number;
  } = {},
): Promise<{ oldPid: number; newPid: number; evidence: string }> {
  const oldPid = stackPid(service);
  process.kill(oldPid, 'SIGKILL');
  await waitFor('the killed process to be gone', async () => !isAlive(oldPid), 30_000, 100);
  const killedAt = Date.now();
  if (opts.downMs) await sleep(opts.downMs);
  if (opts.downUntil) {
    const until = killedAt + (opts.downMaxMs ?? 15_000);
    while (!opts.downUntil() && Date.now() < until) await sleep(250);
  }
  const downS = ((Date.now() - killedAt) / 1000).toFixed(1);
  // Started again; a start that exits at once (PostgreSQL: "lock file already exists" while the
  // killed server's backends are still going) is retried a second later.
  const deadline = Date.now() + service.startupTimeoutMs * 2;
  while (runningPid(service.name) === undefined || !(await service.healthy().catch(() => false))) {
    if (Date.now() > deadline)
      throw new Error(`${service.name} did not come back after kill -9; see ${logFile(service.name)}`);
    if (runningPid(service.name) === undefined) await service.start();
    await sleep(1000);
  }
  const newPid = stackPid(service);
  if (newPid === oldPid) throw new Error(`${service.name}: still PID ${oldPid} after kill -9`);
  const evidence = `pid ${oldPid} killed (gone), down ${downS} s, restarted as pid ${newPid}, healthy after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`;
  return { oldPid, newPid, evidence };
}

/** `pid` and all its descendants (PostgreSQL's backends each call setsid: a process group misses them). */
export function processTree(pid: number): number[] {
  const res = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const children = new Map<number, number[]>();
  for (const line of res.stdout.trim().split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number) as [number, number];
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The SIGCONTs owed to services stopped right now (a drill interrupted mid-hang pays them). */
const owedContinues = new Set<() => void>();

/**
 * Continues every service a hang stopped and has not yet continued. A drill stopped by Ctrl-C in the
 * middle of a hung cell would otherwise leave PostgreSQL (or Kafka…) stopped: `stack:down` cannot end
 * it and `stack:up` fails on its still-held resources.
 */
export function continueHungServices(): void {
  for (const cont of owedContinues) cont();
  owedContinues.clear();
}

/**
 * SIGSTOP of a stack service's process and every descendant (PostgreSQL's backends, which serve the
 * open connections) for `ms`, then SIGCONT to each; every one of them is checked stopped in /proc.
 */
export function hangStackService(
  service: StackService,
  ms: number,
): Promise<{ pid: number; evidence: string }> {
  return hangProcessTree(stackPid(service), service.name, ms);
}

/**
 * A process of the tree that can run no more: stopped (T), or exited and not yet reaped (Z, X). A
 * child that exits just before its parent is stopped stays a zombie until the parent, continued,
 * reaps it (PostgreSQL's autovacuum workers and the backends of closed connections do this).
 */
const HALTED = new Set(['T', 'Z', 'X']);

/** SIGSTOP of `pid` and every descendant for `ms`, then SIGCONT to each (hangStackService). */
export async function hangProcessTree(
  pid: number,
  name: string,
  ms: number,
): Promise<{ pid: number; evidence: string }> {
  // The parent first: a stopped parent forks no new child while the others are being stopped.
  const tree = processTree(pid);
  const signal = (sig: NodeJS.Signals): void => {
    for (const p of tree) {
      try {
        process.kill(p, sig);
      } catch {
        /* gone meanwhile */
      }
    }
  };
  const cont = (): void => signal('SIGCONT');
  owedContinues.add(cont);
  signal('SIGSTOP');
  const running = (): number[] =>
    tree.filter((p) => {
      const state = procState(p);
      return state !== undefined && !HALTED.has(state);
    });
  try {
    await waitFor(
      `${name} (pid ${pid} and ${tree.length - 1} descendants) to be stopped`,
      async () => running().length === 0,
      5000,
      50,
    ).catch((e: Error) => {
      const states = running().map((p) => `${p} ${procState(p) ?? 'gone'}`);
      throw new Error(`${e.message}; still running: ${states.join(', ') || 'none'}`);
    });
    const stopped = tree.filter((p) => procState(p) === 'T').length;
    await sleep(ms);
    return {
      pid,
      evidence: `pid ${pid} and ${stopped - 1} descendants in state T (stopped) for ${ms / 1000} s, then SIGCONT`,
    };
  } finally {
    owedContinues.delete(cont);
    cont();
  }
}

export { isAlive, procState };
