// What every local service needs: where its files go, how to install a tool once into the cache,
// how to start a process detached with its PID recorded, and how to stop exactly that process.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { basename, join } from 'node:path';
import { config } from '../common/config.js';
import { sleep, waitFor } from '../common/wait.js';

export const cacheDir = config.ADCLICK_CACHE_DIR;
export const stackDir = config.ADCLICK_STACK_DIR;
export const binDir = join(cacheDir, 'bin');
export const logDir = join(stackDir, 'logs');
const runDir = join(stackDir, 'run');

export function dataDir(service: string): string {
  const dir = join(stackDir, 'data', service);
  mkdirSync(dir, { recursive: true });
  return dir;
}
export const logFile = (service: string): string => join(logDir, `${service}.log`);
const pidFile = (service: string): string => join(runDir, `${service}.pid`);
// The command line the PID was started with: a PID the kernel has since given to another program
// must not count as the service (nor be signalled by stopDetached).
const commandFile = (service: string): string => join(runDir, `${service}.cmd.json`);

export const isRoot = (): boolean => process.getuid?.() === 0;

export function log(message: string): void {
  if (!process.env.ADCLICK_STACK_QUIET) console.log(`[stack] ${message}`);
}

/** Runs a command to completion (installs, formatting); its output goes to `logName`'s install log. */
export function runStep(
  logName: string,
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${logName}.install.log`);
  const out = openSync(logPath, 'a');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', out, out],
    });
    child.once('error', (e) => reject(new Error(`${command} could not run: ${e.message}`)));
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (exit ${code}); see ${logPath}`));
    });
  }).finally(() => closeSync(out));
}

export function which(command: string): string | undefined {
  const res = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

let aptQueue: Promise<void> = Promise.resolve();
let aptUpdated = false;
/** Installs Debian packages when a required binary is missing (root only; otherwise explains). */
export function ensureDebianPackages(binaries: string[], packages: string[]): Promise<void> {
  if (binaries.every((b) => which(b) || existsSync(b))) return Promise.resolve();
  if (!isRoot() || !which('apt-get')) {
    throw new Error(
      `missing ${binaries.join(', ')}: install the packages ${packages.join(' ')} (e.g. sudo apt-get install ${packages.join(' ')})`,
    );
  }
  // apt holds a lock: one install at a time.
  aptQueue = aptQueue.then(async () => {
    log(`installing ${packages.join(' ')} from Debian ...`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    if (!aptUpdated) await runStep('apt', 'apt-get', ['update', '-qq'], { env });
    aptUpdated = true;
    await runStep('apt', 'apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
      env,
    });
  });
  return aptQueue;
}

/** Builds a Go command into the cache with `go install` unless it is already there. */
export async function ensureGoBinary(name: string, modulePath: string): Promise<string> {
  const target = join(binDir, name);
  if (existsSync(target)) return target;
  if (!which('go')) throw new Error(`${name} needs Go to build (${modulePath}); install Go 1.22+`);
  log(`building ${name} with go install ${modulePath} (first time only, a few minutes) ...`);
  mkdirSync(binDir, { recursive: true });
  await runStep(name, 'go', ['install', modulePath], { env: { GOBIN: binDir, CGO_ENABLED: '0' } });
  return target;
}

/** Copies a Maven project's runtime dependencies into the cache unless already done. */
export async function ensureMavenJars(name: string, pomDir: string, libDir: string): Promise<void> {
  const done = join(libDir, '.complete');
  if (existsSync(done) && statSync(done).mtimeMs >= statSync(join(pomDir, 'pom.xml')).mtimeMs) return;
  if (!which('mvn')) throw new Error(`${name} needs Maven to fetch its jars; install maven`);
  log(`fetching ${name} jars from Maven Central (first time only) ...`);
  rmSync(libDir, { recursive: true, force: true });
  await runStep(
    name,
    'mvn',
    ['-q', '-B', 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${libDir}`],
    { cwd: pomDir },
  );
  writeFileSync(done, new Date().toISOString());
}

export function readPid(service: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(service), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process exists and has not exited. A process killed with -9 whose parent has not
 * reaped it yet is a zombie: it still answers kill(pid, 0), but it will never serve again (in a
 * container whose init does not reap, it stays a zombie for good). /proc says which it is.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procState(pid);
  return state !== 'Z' && state !== 'X';
}

/** The state letter of /proc/<pid>/stat (R, S, D, Z, ...); undefined without /proc or the process. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` still runs the program recorded for it: the same executable name, and the same
 * arguments unless the program rewrote its own title (Redis and PostgreSQL do: one NUL-free field).
 * Without /proc (not Linux) or without a record (a stack started by an older version) it trusts
 * the PID.
 */
export function runsCommand(pid: number, started: readonly string[] | undefined): boolean {
  if (!started || started.length === 0) return true;
  const recorded = execTarget(started);
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return !existsSync('/proc/self/cmdline');
  }
  const argv = cmdline.split('\0').filter((a) => a.length > 0);
  if (argv.length === 0) return false; // a zombie or a kernel thread
  const program = (arg: string): string => basename(arg.split(' ')[0] ?? '');
  if (program(argv[0]!) !== program(recorded[0]!)) return false;
  return argv.length === 1 || argv.join('\0') === recorded.join('\0');
}

/** What a command that execs another one (PostgreSQL as root: `setpriv … -- postgres …`) runs as. */
function execTarget(argv: readonly string[]): readonly string[] {
  const end = argv.indexOf('--');
  return basename(argv[0] ?? '') === 'setpriv' && end >= 0 && end < argv.length - 1
    ? argv.slice(end + 1)
    : argv;
}

function readCommand(service: string): string[] | undefined {
  try {
    const argv = JSON.parse(readFileSync(commandFile(service), 'utf8')) as unknown;
    return Array.isArray(argv) && argv.every((a) => typeof a === 'string') ? (argv as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** Records the PID a service runs as and the command line it was started with. */
export function recordPid(service: string, pid: number, argv: readonly string[]): void {
  mkdirSync(runDir, { recursive: true });
  writeFileSync(commandFile(service), JSON.stringify(argv));
  writeFileSync(pidFile(service), String(pid));
}

/**
 * The PID of the service if it is running: recorded, alive (not dead, not a zombie) and still
 * running the recorded program. Anything else means "not running": start it.
 */
export function runningPid(service: string): number | undefined {
  const pid = readPid(service);
  if (pid === undefined || !isAlive(pid)) return undefined;
  return runsCommand(pid, readCommand(service)) ? pid : undefined;
}

/**
 * The nice level of the processes a click does not wait for, on one shared machine: the stores
 * behind the batch and serving paths (PostgreSQL, Pinot, Temporal, S3, Prometheus) and the stream and
 * batch processors (speed layer, archiver, worker). A redirect waits only for the click process,
 * Redis and Kafka, which keep the normal priority, so a PostgreSQL restart, a compaction or a Pinot
 * segment build takes what CPU the click path leaves instead of delaying 302s. 0 turns it off; on
 * hosts of their own it changes nothing.
 */
export const backgroundNice = (env: NodeJS.ProcessEnv = process.env): number =>
  Number(env.ADCLICK_BACKGROUND_NICE ?? 10);

/** `command args` as spawned: under `nice` for a background process when the level is above 0. */
export function withPriority(
  command: string,
  args: string[],
  background: boolean,
  env: NodeJS.ProcessEnv = process.env,
): [string, string[]] {
  const nice = backgroundNice(env);
  return background && nice > 0 ? ['nice', ['-n', String(nice), command, ...args]] : [command, args];
}

/**
 * Gives a background process started in a session of its own (`detached`) the background nice level
 * as its scheduling group's weight too. With Linux's autogroups (`kernel.sched_autogroup_enabled`, on
 * by default on desktop and many server kernels) each session is one group and the scheduler first
 * shares the CPU between groups, by the group's nice, then inside a group by each thread's. A niced
 * process alone in its session therefore competed with the click process as an equal: its own nice
 * ranked it only against itself. Raising a group's nice needs no privilege. Where autogroups are off
 * or absent (not Linux) this changes nothing and the thread's nice is what counts.
 */
export function lowerSessionGroup(pid: number, env: NodeJS.ProcessEnv = process.env): void {
  const nice = backgroundNice(env);
  if (nice <= 0) return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    /* no autogroups here (or the process is gone): the thread's nice is all there is */
  }
}

/** Starts a long-running process in its own process group, output appended to its log. */
export function startDetached(
  service: string,
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; background?: boolean } = {},
): number {
  mkdirSync(logDir, { recursive: true });
  mkdirSync(runDir, { recursive: true });
  const out = openSync(logFile(service), 'a');
  // `nice` execs the command in place: the PID and the command line recorded below stay the service's.
  const [file, argv] = withPriority(command, args, opts.background ?? false);
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`${service}: could not start ${command}`);
  child.unref();
  if (opts.background) lowerSessionGroup(child.pid);
  recordPid(service, child.pid, [command, ...args]);
  return child.pid;
}

/** Stops the process group this stack started for `service` (by recorded PID, never by name). */
export async function stopDetached(service: string, graceMs = 20_000): Promise<boolean> {
  if (readPid(service) === undefined) return false;
  // Only a PID that still runs the service is signalled: a reused PID belongs to someone else.
  const pid = runningPid(service);
  if (pid === undefined) {
    rmSync(pidFile(service), { force: true });
    rmSync(commandFile(service), { force: true });
    return true;
  }
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  if (isAlive(pid)) {
    signal('SIGTERM');
    // A stopped process (SIGSTOP, a drill's hang cut short) acts on SIGTERM only once continued.
    signal('SIGCONT');
    const deadline = Date.now() + graceMs;
    while (isAlive(pid) && Date.now() < deadline) await sleep(200);
    if (isAlive(pid)) signal('SIGKILL');
    while (isAlive(pid)) await sleep(100);
  }
  rmSync(pidFile(service), { force: true });
  rmSync(commandFile(service), { force: true });
  return true;
}

/** Waits for a started service to answer `probe` (common/wait.ts `waitFor`); the error names its log. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  logHint: string,
): Promise<void> {
  await waitFor(`${what} to become healthy`, probe, timeoutMs, 500).catch(() => {
    throw new Error(
      `${what} did not become healthy within ${Math.round(timeoutMs / 1000)} s; see ${logHint}`,
    );
  });
}

export function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.ok;
}

/** Resident memory of a process and its descendants, in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const res = spawnSync('ps', ['-e', '-o', 'pid=,ppid=,rss='], { encoding: 'utf8' });
  const rows = res.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const [p, pp, r] of rows) {
    rss.set(p, r);
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    total += rss.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return Math.round(total / 1024);
}
