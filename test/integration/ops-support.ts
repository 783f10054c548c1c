// A private Prometheus for the operations tests (its own port, TSDB and configuration, never the
// shared stack's), the drill's copy of the alert rules with short windows, and the metric names a
// PromQL expression reads.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prometheusArgs, prometheusConfig } from '../../stack/services/prometheus.js';
import { freePort, waitFor } from './faults-support.js';
import { sleep } from '../../common/wait.js';

export interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

export class PrivatePrometheus {
  private child?: ChildProcess;
  url = '';

  constructor(private readonly dir: string) {}

  async start(opts: {
    targets: Record<string, string>;
    ruleFiles: string[];
    intervalS: number;
  }): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const configFile = join(this.dir, 'prometheus.yml');
    writeFileSync(
      configFile,
      JSON.stringify(
        prometheusConfig({
          targets: opts.targets,
          ruleFiles: opts.ruleFiles,
          scrapeIntervalS: opts.intervalS,
          evaluationIntervalS: opts.intervalS,
        }),
      ),
    );
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    const log = createWriteStream(join(this.dir, 'prometheus.log'));
    this.child = spawn('prometheus', prometheusArgs(configFile, join(this.dir, 'tsdb'), '127.0.0.1', port), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.pipe(log);
    this.child.stderr!.pipe(log);
    await waitFor(
      'the private Prometheus to be ready',
      async () => (await fetch(`${this.url}/-/ready`)).ok,
      60_000,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }

  /** An instant query; rejects with Prometheus's own error (a bad expression, an unknown function). */
  async query(expr: string): Promise<PromResult[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
    return body.data!.result;
  }

  async targets(): Promise<Array<{ job: string; health: string; lastError: string }>> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as {
      data: { activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> };
    };
    return body.data.activeTargets.map((t) => ({
      job: t.labels.job!,
      health: t.health,
      lastError: t.lastError,
    }));
  }

  async alerts(): Promise<Array<{ labels: Record<string, string>; state: string; activeAt: string }>> {
    const res = await fetch(`${this.url}/api/v1/alerts`);
    const body = (await res.json()) as {
      data: { alerts: Array<{ labels: Record<string, string>; state: string; activeAt: string }> };
    };
    return body.data.alerts;
  }
}

/**
 * ops/alerts.yml with one alert's range/offset and `for:` shortened, for a drill that cannot wait
 * minutes (the production values are the ones ops/alerts.test.yml tests with promtool).
 */
export function drillRules(alert: string, window: string, forTime: string): string {
  const text = readFileSync('ops/alerts.yml', 'utf8');
  const start = text.indexOf(`- alert: ${alert}\n`);
  if (start < 0) throw new Error(`no alert ${alert} in ops/alerts.yml`);
  const next = text.indexOf('- alert: ', start + 1);
  const end = next < 0 ? text.length : next;
  const block = text
    .slice(start, end)
    .replace(/offset \d+[smh]/g, `offset ${window}`)
    .replace(/\[\d+[smh]\]/g, `[${window}]`)
    .replace(/for: \d+[smh]/, `for: ${forTime}`);
  if (block === text.slice(start, end)) throw new Error(`${alert}: nothing to shorten`);
  return text.slice(0, start) + block + text.slice(end);
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'Inf',
  'NaN',
]);

/** The metric names an expression selects (not its functions, aggregations, labels or keywords). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*/g)) {
    const after = bare.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0])) continue;
    names.add(m[0]);
  }
  return [...names];
}
