// `npm start`: the app's processes on top of the stack, supervised. Each runs as its own Node process
// (as it would in production); its output is prefixed with its name; a process that dies is restarted
// with backoff; Ctrl-C / SIGTERM stops them all cleanly (SIGTERM, then SIGKILL after a grace period).
// Those restarts are for bugs: no process exits because a dependency is away (docs/dependencies.md),
// and each serves /metrics and /readyz on its own port (README).
// One supervisor per checkout: a second `npm start` while one runs says so and exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { config } from '../common/config.js';
import { RestartBackoff } from '../common/wait.js';
import { withPriority } from './runtime.js';
import { prometheusUrl } from './services/prometheus.js';
import { temporalUiUrl } from './services/temporal.js';

interface AppProcess {
  name: string;
  entry: string;
  args?: string[];
  /** Runs at the background nice level (stack/runtime.ts backgroundNice): no click waits for it. */
  background?: boolean;
}

/** The app's long-running processes, one composition root in apps/ each. */
export const appProcesses: AppProcess[] = [
  { name: 'click', entry: 'apps/click.ts' },
  { name: 'api', entry: 'apps/api.ts' },
  { name: 'speed-layer', entry: 'apps/speed-layer.ts', background: true },
  { name: 'archiver', entry: 'apps/archiver.ts', background: true },
  { name: 'worker', entry: 'apps/worker.ts', background: true },
];

/** Run once before them: creates or updates the Temporal schedules. */
const schedulesCommand: AppProcess = { name: 'schedules', entry: 'apps/schedules.ts' };

const GRACE_MS = 15_000;

/**
 * V8's young generation per process (`--max-semi-space-size`, MB). The consumers keep a large one: the
 * Kafka clients' short-lived buffers die young, and the archiver used 36% less CPU per click with it
 * (README "CPU per click, second round"). The click process keeps V8's default of 16 MB: a scavenge's
 * pause grows with the semi-space (mean 10 ms at 64 MB, 3.4 ms at 16 MB, at 2,000 clicks/s), every
 * click arriving during one waits it out, and at 64 MB those pauses were most of the click's p99
 * (docs/faults.md, "5 December: the click's scavenges").
 */
export const YOUNG_GENERATION_MB: Readonly<Record<string, number>> = { click: 16, default: 64 };

/**
 * The environment of an app process under `npm start`: the whole pipeline shares this machine, so
 * one click worker (a click host of its own keeps one per core) and the young generation above for
 * its kind. The bench's system section and the fault matrix run the app the same way. Either is
 * overridden by setting it (NODE_OPTIONS then applies to every process).
 */
export function appEnv(env: NodeJS.ProcessEnv = process.env, name = 'default'): NodeJS.ProcessEnv {
  const semiSpace = YOUNG_GENERATION_MB[name] ?? YOUNG_GENERATION_MB.default!;
  return {
    ...env,
    ADCLICK_CLICK_WORKERS: env.ADCLICK_CLICK_WORKERS ?? '1',
    NODE_OPTIONS: env.NODE_OPTIONS ?? `--max-semi-space-size=${semiSpace}`,
  };
}

class Supervised {
  private child?: ChildProcess;
  private readonly backoff = new RestartBackoff({ baseMs: 1000 });
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly spec: AppProcess) {}

  start(): void {
    const [file, args] = withPriority(
      process.execPath,
      ['--import', 'tsx', this.spec.entry, ...(this.spec.args ?? [])],
      this.spec.background ?? false,
    );
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: appEnv(process.env, this.spec.name),
    });
    this.child = child;
    const prefix = `[${this.spec.name}]`.padEnd(14);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => console.log(`${prefix} ${line}`));
    }
    const startedAt = Date.now();
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        resolve();
        if (this.stopping) return;
        // A process that ran for a while gets a fresh backoff; one that keeps dying waits longer.
        const delay = this.backoff.next(Date.now() - startedAt);
        console.log(`${prefix} exited (${signal ?? code}); restarting in ${delay / 1000} s`);
        setTimeout(() => this.stopping || this.start(), delay);
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `demo`: also run the traffic simulator at a gentle rate, so the dashboard moves within a minute. */
export async function startApp(opts: { demo?: boolean } = {}): Promise<void> {
  const demo: AppProcess = {
    name: 'demo-traffic',
    entry: 'tools/simulate.ts',
    args: ['--rate', '20', '--duration', '86400', '--ads', '6', '--out', '.stack/demo-ground-truth.json'],
  };
  const present = [...appProcesses, ...(opts.demo ? [demo] : [])].filter((p) => existsSync(p.entry));
  if (present.length === 0) {
    console.log(`The infrastructure is up; the Temporal Web UI is at ${temporalUiUrl}.`);
    return;
  }
  const owner = claimSupervisor(config.ADCLICK_STACK_DIR);
  if (owner !== undefined) {
    console.error(
      `adclick is already running in this checkout (supervisor PID ${owner}); stop it with Ctrl-C there, ` +
        'or run `npm run stack:status` to see the infrastructure.',
    );
    process.exitCode = 1;
    return;
  }
  runSchedulesCommand();
  const supervised = present.map((p) => new Supervised(p));
  for (const s of supervised) s.start();

  console.log(`
adclick is running (${present.map((p) => p.name).join(', ') || 'infrastructure only'}):
  Clicks, API, dashboard  http://${config.HOST}:${config.PORT}  (the click process; the rest goes to the API process on :${config.API_PORT})
  /metrics and /readyz    click :${config.PORT}, api :${config.API_PORT}, speed-layer :${config.SPEED_LAYER_METRICS_PORT}, archiver :${config.ARCHIVER_METRICS_PORT}, worker :${config.WORKER_METRICS_PORT}
  Temporal Web UI         ${temporalUiUrl}
  Operator view           http://${config.HOST}:${config.PORT}/ops.html  (with the admin key)
  Prometheus              ${prometheusUrl}  (alerts ${prometheusUrl}/alerts, targets ${prometheusUrl}/targets)
  Admin key               ${process.env.ADCLICK_ADMIN_KEY ? '(from ADCLICK_ADMIN_KEY)' : config.ADCLICK_ADMIN_KEY}
Ctrl-C stops the app's processes; the infrastructure keeps running until \`npm run stack:down\`.
`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      console.log('[adclick] stopping ...');
      void Promise.all(supervised.map((s) => s.stop())).then(() => resolve());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  releaseSupervisor(config.ADCLICK_STACK_DIR);
}

const supervisorPidFile = (stackDir: string): string => join(stackDir, 'run', 'app.pid');

/** A live process (not a zombie) that runs this supervisor's program. */
export function isSupervisor(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('stack/cli.ts');
  } catch {
    return false; // no such process
  }
}

/** Records this process as the checkout's supervisor; returns the PID of a live one instead, if any. */
export function claimSupervisor(stackDir: string): number | undefined {
  const file = supervisorPidFile(stackDir);
  const recorded = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
  if (Number.isInteger(recorded) && recorded !== process.pid && isSupervisor(recorded)) return recorded;
  mkdirSync(join(stackDir, 'run'), { recursive: true });
  writeFileSync(file, String(process.pid));
  return undefined;
}

export function releaseSupervisor(stackDir: string): void {
  const file = supervisorPidFile(stackDir);
  if (existsSync(file) && readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file);
}

/** Creates or updates the schedules before the worker polls; a failure is reported, not fatal. */
function runSchedulesCommand(): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', schedulesCommand.entry], {
    env: process.env,
    encoding: 'utf8',
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  for (const line of out.split('\n'))
    if (line) console.log(`${'[schedules]'.padEnd(14)} ${line.replace(/^\[schedules\] /, '')}`);
  if (r.status !== 0)
    console.error(
      '[schedules]    failed: the batch jobs will not start on their own until `npm run schedules` succeeds',
    );
}
