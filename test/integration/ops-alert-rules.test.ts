// The alert rules (ops/alerts.yml) checked and unit-tested by Prometheus's own promtool (installed
// with Debian's prometheus package by `npm run stack:up`), and held to the promise that every alert
// has a unit test and a runbook section in docs/operations.md that its `runbook` annotation names.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const promtool = (...args: string[]) => {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error)
    throw new Error(`promtool could not run (${r.error.message}): run \`npm run stack:up\` to install it`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

const rules = readFileSync('ops/alerts.yml', 'utf8');
const alertNames = [...rules.matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1]!);

describe('alert rules', () => {
  it('are valid rules (promtool check rules)', () => {
    const r = promtool('check', 'rules', 'ops/alerts.yml');
    expect(r.out).toContain(`SUCCESS: ${alertNames.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('pass their unit tests (promtool test rules ops/alerts.test.yml)', () => {
    const r = promtool('test', 'rules', 'ops/alerts.test.yml');
    expect(r.out).not.toContain('FAILED');
    expect(r.status).toBe(0);
  });

  it('each alert has a unit test and a runbook section that its annotation names', () => {
    expect(alertNames.length).toBeGreaterThanOrEqual(12);
    const tests = readFileSync('ops/alerts.test.yml', 'utf8');
    const tested = new Set([...tests.matchAll(/alertname: (\w+)/g)].map((m) => m[1]!));
    const docs = readFileSync('docs/operations.md', 'utf8');
    // GitHub's anchors: the heading lower-cased.
    const anchors = new Set([...docs.matchAll(/^#{2,4} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase()));
    for (const name of alertNames) {
      expect(tested, `${name} has no test in ops/alerts.test.yml`).toContain(name);
      const block = rules.slice(rules.indexOf(`- alert: ${name}\n`)).split(/\n\s*- alert: /)[0]!;
      const runbook = /runbook: docs\/operations\.md#(\S+)/.exec(block)?.[1];
      expect(runbook, `${name} names no runbook`).toBeDefined();
      expect(anchors, `docs/operations.md has no section #${runbook} for ${name}`).toContain(runbook);
    }
  });

  it("docker-compose's Prometheus configuration is valid with these rules (promtool check config)", () => {
    // Its paths are the container's: point them at this checkout's files for the check.
    const dir = mkdtempSync(join(tmpdir(), 'adclick-prom-compose-'));
    try {
      writeFileSync(join(dir, 'admin-key'), 'x');
      const text = readFileSync('ops/prometheus.compose.yml', 'utf8')
        .replaceAll('/etc/prometheus/alerts.yml', resolve('ops/alerts.yml'))
        .replaceAll('/prometheus/admin-key', join(dir, 'admin-key'));
      writeFileSync(join(dir, 'prometheus.yml'), text);
      const r = promtool('check', 'config', join(dir, 'prometheus.yml'));
      expect(r.out).toContain(`SUCCESS: ${alertNames.length} rules found`);
      expect(r.status).toBe(0);
      for (const job of ['click', 'api', 'speed-layer', 'archiver', 'worker'])
        expect(text).toContain(`job_name: ${job}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
