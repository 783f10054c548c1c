// A child process of a benchmark section whose output goes to a log file (shown when it fails).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Children still running: a section that dies on an uncaught error must not leave them behind. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGTERM');
});

export class Child {
  readonly process: ChildProcess;
  readonly logFile: string;
  /** Resolves once the process has exited and all its output is in the log file. */
  private readonly done: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    env: Record<string, string | undefined>,
    logDir: string,
  ) {
    this.logFile = join(logDir, `${name}.log`);
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.process = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // A leftover app process kept the ports of the next run's, which then read the old one's metrics
    // (a run that crashed on a missing wrk left its archiver answering for 17 minutes).
    live.add(this.process);
    this.process.once('exit', () => live.delete(this.process));
    // A command that cannot start (ENOENT) is an exit to its waiters, not an uncaught error.
    this.process.once('error', () => undefined);
    // Both streams into one file: neither may end it alone (the other may still write).
    this.process.stdout?.pipe(log, { end: false });
    this.process.stderr?.pipe(log, { end: false });
    this.done = new Promise((resolve) =>
      this.process.once('close', () => {
        log.end();
        log.once('finish', () => resolve());
        log.once('error', () => resolve());
      }),
    );
  }

  /** `node --import tsx <entry>`, as the supervisor of `npm start` runs the app's processes. */
  static node(
    name: string,
    entry: string,
    env: Record<string, string | undefined>,
    logDir: string,
    args: string[] = [],
  ): Child {
    // BENCH_CPU_PROF=<dir> profiles every Node child (V8 .cpuprofile files, written when it exits).
    const prof = process.env.BENCH_CPU_PROF
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/${name}`]
      : [];
    return new Child(name, process.execPath, [...prof, '--import', 'tsx', entry, ...args], env, logDir);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  output(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 20_000): Promise<void> {
    if (!this.running) return;
    const exited = new Promise<void>((r) => this.process.once('exit', () => r()));
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** The exit code, once the process has exited and its output is all in the log file. */
  async exited(): Promise<number> {
    await this.done;
    return this.process.exitCode ?? 1;
  }
}
