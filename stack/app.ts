// `npm start`: the app's processes on top of the stack, supervised. Each runs as its own Node process
// (as it would in production); its output is prefixed with its name; a process that dies is restarted
// with backoff; Ctrl-C / SIGTERM stops them all cleanly (SIGTERM, then SIGKILL after a grace period).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { config } from '../common/config.js';
import { temporalUiUrl } from './services/temporal.js';

interface AppProcess {
  name: string;
  entry: string;
  args?: string[];
}

export const appProcesses: AppProcess[] = [
  { name: 'api', entry: 'ingest/main.ts' },
  { name: 'speed-layer', entry: 'speed-layer/main.ts' },
  { name: 'archiver', entry: 'batch-layer/archiver-main.ts' },
  { name: 'worker', entry: 'batch-layer/worker.ts' },
];

const GRACE_MS = 15_000;

class Supervised {
  private child?: ChildProcess;
  private restarts = 0;
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly spec: AppProcess) {}

  start(): void {
    const child = spawn(process.execPath, ['--import', 'tsx', this.spec.entry, ...(this.spec.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
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
        if (Date.now() - startedAt > 60_000) this.restarts = 0;
        const delay = Math.min(30_000, 1000 * 2 ** this.restarts++);
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
  const supervised = present.map((p) => new Supervised(p));
  for (const s of supervised) s.start();

  console.log(`
adclick is running (${present.map((p) => p.name).join(', ') || 'infrastructure only'}):
  API and click endpoint  http://${config.HOST}:${config.PORT}
  Dashboard               http://${config.HOST}:${config.PORT}/
  Temporal Web UI         ${temporalUiUrl}
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
}
