// The local stack's JVMs (Kafka, Pinot) serve their figures through the JMX exporter's Java agent,
// with the rules of ops/jmx/<service>.yml (stack/services/prometheus.ts). Each file also lists the
// MBeans the agent reads (`includeObjectNames`): without the list the agent walked every MBean of the
// broker on each scrape, ~190 ms of Kafka's CPU beside the click path's produce requests
// (docs/faults.md, "Kafka's pauses"). This checks, against the running stack, that the lists leave
// out nothing: every rule of Kafka's still yields a series, and so does every Kafka series that the
// alert rules (ops/alerts.yml) or the dashboard read; Pinot's list reads its metrics domain.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';

const exporters = {
  kafka: config.KAFKA_JMX_EXPORTER_PORT,
  pinot: config.PINOT_JMX_EXPORTER_PORT,
} as const;

/** The metric names an exporter serves now. */
async function served(port: number): Promise<Set<string>> {
  const res = await fetch(`http://${config.HOST}:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  const names = new Set<string>();
  for (const line of (await res.text()).split('\n'))
    if (line && !line.startsWith('#')) names.add(line.split(/[{ ]/, 1)[0]!);
  return names;
}

/** Each rule's metric name up to its first substitution (`kafka_server_replicamanager_$1` → `kafka_server_replicamanager_`). */
function ruleNamePrefixes(service: keyof typeof exporters): string[] {
  const text = readFileSync(`ops/jmx/${service}.yml`, 'utf8');
  return [...text.matchAll(/^\s+name:\s*(\S+)/gm)].map((m) => m[1]!.split('$', 1)[0]!);
}

/** The kafka_* and pinot_* series the alert rules and the dashboard read. */
function seriesOperatorsRead(): string[] {
  const text =
    readFileSync('ops/alerts.yml', 'utf8') + readFileSync('ops/grafana/dashboards/adclick.json', 'utf8');
  return [...new Set([...text.matchAll(/(?<![\w])(?:kafka|pinot)_\w+/g)].map((m) => m[0]))];
}

describe("the stack's JMX exporters", () => {
  it('Kafka: the agent reads only the listed MBeans, and every rule of ops/jmx/kafka.yml yields a series', async () => {
    expect(readFileSync('ops/jmx/kafka.yml', 'utf8')).toMatch(/^includeObjectNames:/m);
    const names = await served(exporters.kafka);
    const prefixes = ruleNamePrefixes('kafka');
    expect(prefixes.length).toBeGreaterThanOrEqual(5);
    expect(
      prefixes.filter((p) => ![...names].some((n) => n.startsWith(p))),
      'rules with no series',
    ).toEqual([]);
    // The Kafka series the alert rules and the dashboard read.
    const wanted = seriesOperatorsRead().filter((n) => n.startsWith('kafka_'));
    expect(wanted.length).toBeGreaterThanOrEqual(1);
    expect(
      wanted.filter((n) => !names.has(n)),
      'series operators read that are not served',
    ).toEqual([]);
  });

  // Pinot's specific series (freshness, rows consumed) exist only once a realtime table consumes and
  // is queried, which a fresh stack may not have done yet; its catch-all rule covers every bean of
  // Pinot's metrics domain, so a series from each of its roles shows that the listed domain is read.
  it("Pinot: the agent reads only Pinot's metrics domain, and its controller, broker and server figures are served", async () => {
    expect(readFileSync('ops/jmx/pinot.yml', 'utf8')).toMatch(/^includeObjectNames:/m);
    const names = await served(exporters.pinot);
    for (const role of ['controller', 'broker', 'server'])
      expect(names.has(`pinot_${role}_metric`), `pinot_${role}_metric served`).toBe(true);
  });
});
