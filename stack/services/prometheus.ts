// Prometheus from Debian's packages: scrapes every process of `npm start` (ports from common/config.ts)
// and evaluates ops/alerts.yml. Its configuration is generated on every start and every `up` (then
// reloaded), so a port changed in the environment is followed; the TSDB lives in .stack/data/prometheus.
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { config, urlPort } from '../../common/config.js';
import type { StackService } from '../service.js';
import {
  cacheDir,
  dataDir,
  ensureDebianPackages,
  ensureMavenJars,
  httpOk,
  log,
  startDetached,
} from '../runtime.js';

export const prometheusUrl = `http://${config.HOST}:${config.PROMETHEUS_PORT}`;
/** The production rules; tests may add rule files of their own. */
export const alertRulesFile = fileURLToPath(new URL('../../ops/alerts.yml', import.meta.url));

/** Where each process of `npm start` serves /metrics (one scrape job per process). */
export function appMetricsTargets(): Record<string, string> {
  const apiPort = config.API_URL ? urlPort(config.API_URL) : config.API_PORT;
  return {
    click: `${config.HOST}:${config.PORT}`,
    api: `${config.HOST}:${apiPort}`,
    'speed-layer': `${config.HOST}:${config.SPEED_LAYER_METRICS_PORT}`,
    archiver: `${config.HOST}:${config.ARCHIVER_METRICS_PORT}`,
    worker: `${config.HOST}:${config.WORKER_METRICS_PORT}`,
  };
}

/** The JVMs of the local stack, scraped through the JMX exporter (label service="adclick-stack"). */
export function stackMetricsTargets(): Record<string, string> {
  return {
    kafka: `${config.HOST}:${config.KAFKA_JMX_EXPORTER_PORT}`,
    pinot: `${config.HOST}:${config.PINOT_JMX_EXPORTER_PORT}`,
  };
}

const jmxLibDir = join(cacheDir, 'jmx-exporter', 'lib');
const jmxJar = join(jmxLibDir, 'jmx_prometheus_javaagent-1.0.1.jar');
const jmxPomDir = fileURLToPath(new URL('../maven/jmx-exporter', import.meta.url));

/** Fetches the JMX exporter's agent from Maven Central into the cache (once). */
export function ensureJmxExporter(): Promise<void> {
  return ensureMavenJars('jmx-exporter', jmxPomDir, jmxLibDir);
}

/**
 * The JVM option that loads the JMX exporter into Kafka's or Pinot's JVM, serving /metrics on the
 * port of common/config.ts with the rules of ops/jmx/<service>.yml. None while the agent is not in
 * the cache yet (`stack:up` fetches it): the service starts as before, without the figures.
 */
export function jmxExporterJvmArgs(service: 'kafka' | 'pinot'): string[] {
  if (!existsSync(jmxJar)) {
    log(`${service}: no JMX exporter agent in the cache yet; starting without its metrics`);
    return [];
  }
  const port = service === 'kafka' ? config.KAFKA_JMX_EXPORTER_PORT : config.PINOT_JMX_EXPORTER_PORT;
  const rules = fileURLToPath(new URL(`../../ops/jmx/${service}.yml`, import.meta.url));
  return [`-javaagent:${jmxJar}=${config.HOST}:${port}:${rules}`];
}

export interface PrometheusConfigOptions {
  /** job name → host:port serving /metrics */
  targets: Record<string, string>;
  /** The stack's own services (the JVMs), labelled service="adclick-stack". */
  stackTargets?: Record<string, string>;
  ruleFiles: string[];
  scrapeIntervalS?: number;
  evaluationIntervalS?: number;
  /** A file holding the admin key: in production every /metrics needs it (common/health.ts). */
  bearerTokenFile?: string;
}

/**
 * prometheus.yml as an object (written as JSON, which is YAML). Every app job carries the label
 * `service="adclick"`, which the alert rules and the dashboard select on.
 */
export function prometheusConfig(opts: PrometheusConfigOptions): object {
  const interval = (s: number): string => `${s}s`;
  return {
    global: {
      scrape_interval: interval(opts.scrapeIntervalS ?? 15),
      evaluation_interval: interval(opts.evaluationIntervalS ?? 15),
      scrape_timeout: interval(Math.min(10, opts.scrapeIntervalS ?? 15)),
    },
    rule_files: opts.ruleFiles,
    scrape_configs: [
      ...Object.entries(opts.targets).map(([job, target]) => ({
        job_name: job,
        metrics_path: '/metrics',
        ...(opts.bearerTokenFile && {
          authorization: { type: 'Bearer', credentials_file: opts.bearerTokenFile },
        }),
        static_configs: [{ targets: [target], labels: { service: 'adclick', process: job } }],
      })),
      ...Object.entries(opts.stackTargets ?? {}).map(([job, target]) => ({
        job_name: job,
        metrics_path: '/metrics',
        static_configs: [{ targets: [target], labels: { service: 'adclick-stack', process: job } }],
      })),
    ],
  };
}

/** Writes the stack's configuration (and the admin key file next to it); returns its path. */
function writeStackConfig(): string {
  const dir = dataDir('prometheus');
  const keyFile = join(dir, 'admin-key');
  writeFileSync(keyFile, config.ADCLICK_ADMIN_KEY, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  const file = join(dir, 'prometheus.yml');
  writeFileSync(
    file,
    JSON.stringify(
      prometheusConfig({
        targets: appMetricsTargets(),
        stackTargets: stackMetricsTargets(),
        ruleFiles: [alertRulesFile],
        scrapeIntervalS: 15,
        evaluationIntervalS: 15,
        bearerTokenFile: keyFile,
      }),
      null,
      2,
    ),
  );
  return file;
}

/** Starts a Prometheus with `configFile`, its TSDB in `dataPath`, on host:port (also used by the tests). */
export function prometheusArgs(configFile: string, dataPath: string, host: string, port: number): string[] {
  return [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataPath}`,
    '--storage.tsdb.retention.time=15d',
    `--web.listen-address=${host}:${port}`,
    '--web.enable-lifecycle',
    '--log.level=warn',
  ];
}

export const prometheus: StackService = {
  name: 'prometheus',
  address: `${prometheusUrl} (alerts ${prometheusUrl}/alerts)`,
  startupTimeoutMs: 60_000,
  async install() {
    await Promise.all([
      ensureDebianPackages(['prometheus', 'promtool'], ['prometheus']),
      ensureJmxExporter(),
    ]);
  },
  async start() {
    const file = writeStackConfig();
    startDetached(
      'prometheus',
      'prometheus',
      prometheusArgs(file, join(dataDir('prometheus'), 'tsdb'), config.HOST, config.PROMETHEUS_PORT),
      { background: true },
    );
  },
  healthy() {
    return httpOk(`${prometheusUrl}/-/ready`);
  },
  async prepare() {
    // A running Prometheus picks up a changed configuration or rule file on every `up`.
    writeStackConfig();
    const res = await fetch(`${prometheusUrl}/-/reload`, {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`prometheus: reloading the configuration failed: ${await res.text()}`);
  },
};
