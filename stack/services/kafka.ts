// Kafka 4 (KRaft, one node acting as broker and controller) from Maven Central jars on Java 17.
// Single-node settings: replication factor 1 for the offsets and transaction-state topics, without
// which consumer groups and transactions hang silently.
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostPort, kafkaBrokers } from '../../common/config.js';
import { appTopics, createKafka, describeTopicChanges, ensureTopics } from '../../common/kafka.js';
import type { StackService } from '../service.js';
import { jmxExporterJvmArgs } from './prometheus.js';
import { cacheDir, dataDir, ensureMavenJars, log, runStep, startDetached } from '../runtime.js';

const { host, port } = hostPort(kafkaBrokers()[0]!);
const controllerPort = port + 1;
const libDir = join(cacheDir, 'kafka', 'lib');
const classpath = `${libDir}/*`;
const log4j = resolve('stack/kafka/log4j2.yaml');

function writeServerProperties(dir: string): string {
  const file = join(dir, 'server.properties');
  const props = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@${host}:${controllerPort}`,
    // PROXIED: for the fault matrix's Toxiproxy (stack/services/toxiproxy.ts): the broker listens on
    // the port + 3 and advertises the port + 4, where the proxy listens, so that clients which
    // bootstrap through the proxy stay behind it. Nothing connects to it outside the drill.
    listeners: `PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort},PROXIED://${host}:${port + 3}`,
    'advertised.listeners': `PLAINTEXT://${host}:${port},PROXIED://${host}:${port + 4}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT',
    'log.dirs': join(dir, 'logs'),
    'num.partitions': '4',
    'auto.create.topics.enable': 'false',
    'offsets.topic.replication.factor': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    'log.retention.hours': '168',
    // A small machine: Kafka's thread pools are sized for a server (3 network, 8 I/O, 10 background
    // threads); on 2 cores they only contend. With these and the serial collector, Kafka used 0.065
    // instead of 0.075 CPU s per 1,000 clicks at 5,000 clicks/s (README "Throughput on one machine").
    'num.network.threads': '1',
    'num.io.threads': '2',
    'background.threads': '2',
    'log.cleaner.threads': '1',
  };
  writeFileSync(
    file,
    Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
  return file;
}

const jvmArgs = [
  '-Xms256m',
  '-Xmx768m',
  // One collector thread: the heap is small and a concurrent collector's threads cost more than
  // its short pauses.
  '-XX:+UseSerialGC',
  `-Dlog4j2.configurationFile=${log4j}`,
  '-cp',
  classpath,
];

export const kafka: StackService = {
  name: 'kafka',
  address: `${host}:${port}`,
  startupTimeoutMs: 90_000,
  install() {
    return ensureMavenJars('kafka', resolve('stack/maven/kafka'), libDir);
  },
  async start() {
    const dir = dataDir('kafka');
    const properties = writeServerProperties(dir);
    if (!existsSync(join(dir, 'logs', 'meta.properties'))) {
      // Kafka's own ids never start with '-' (one in 64 random ones would): the storage tool's
      // argument parser took such an id for an option and the first start of a new stack failed.
      let clusterId: string;
      do clusterId = randomBytes(16).toString('base64url');
      while (clusterId.startsWith('-'));
      await runStep('kafka', 'java', [
        ...jvmArgs,
        'kafka.tools.StorageTool',
        'format',
        `--cluster-id=${clusterId}`,
        '-c',
        properties,
      ]);
    }
    startDetached('kafka', 'java', [...jmxExporterJvmArgs('kafka'), ...jvmArgs, 'kafka.Kafka', properties]);
  },
  async healthy() {
    const admin = createKafka('adclick-stack-probe', { quiet: true }).admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      await admin.describeCluster();
      return true;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  },
  async prepare() {
    const admin = createKafka('adclick-stack').admin();
    await admin.connect();
    try {
      for (const line of describeTopicChanges(await ensureTopics(admin, appTopics()))) log(line);
    } finally {
      await admin.disconnect();
    }
  },
};
