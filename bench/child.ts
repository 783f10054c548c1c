// A child process of a benchmark section whose output goes to a log file (shown when it fails).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class Child {
  readonly process: ChildProcess;
  readonly logFile: string;

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
    this.process.stdout?.pipe(log);
    this.process.stderr?.pipe(log);
  }

  /** `node --import tsx <entry>`, as the supervisor of `npm start` runs the app's processes. */
  static node(
    name: string,
    entry: string,
    env: Record<string, string | undefined>,
    logDir: string,
    args: string[] = [],
  ): Child {
    return new Child(name, process.execPath, ['--import', 'tsx', entry, ...args], env, logDir);
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

  exited(): Promise<number> {
    if (!this.running) return Promise.resolve(this.process.exitCode ?? 1);
    return new Promise((r) => this.process.once('exit', (code) => r(code ?? 1)));
  }
}
