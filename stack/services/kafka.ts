// Kafka 4 (KRaft, each node acting as broker and controller) from Maven Central jars on Java 17.
// The local stack runs one node (`kafka`), with replication factor 1 for the offsets and
// transaction-state topics, without which consumer groups and transactions hang silently; the local
// cluster (stack/cluster.ts) runs three `kafkaNode`s with one quorum and replication 3.
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostPort, kafkaBrokers } from '../../common/config.js';
import { Kafka, logLevel } from 'kafkajs';
import { appTopics, createKafka, describeTopicChanges, ensureTopics } from '../../common/kafka.js';
import type { StackService } from '../service.js';
import { jmxExporterJvmArgs } from './prometheus.js';
import { cacheDir, dataDir, ensureMavenJars, log, runStep, startDetached } from '../runtime.js';
import { sleep } from '../../common/wait.js';

const libDir = join(cacheDir, 'kafka', 'lib');
const classpath = `${libDir}/*`;
const log4j = resolve('stack/kafka/log4j2.yaml');

/** One KRaft node (broker and controller in one JVM): the single-node stack's, or one of a cluster's. */
export interface KafkaNodeOptions {
  /** Service name: its data folder, PID and log (`kafka`, `kafka-2`, ...). */
  name: string;
  nodeId: number;
  /** host:port of its PLAINTEXT listener; the controller listens on port + 1. */
  address: string;
  /** Every voter of the controller quorum, `id@host:port`. */
  voters: string;
  /** Replication of the internal topics (offsets, transactions) and their min ISR. */
  replication: number;
  minInsync: number;
  /** Nodes of the cluster: `prepare` (topics) waits until that many brokers are registered. */
  clusterSize: number;
  /** The one cluster id every node is formatted with (undefined: a random one, single node). */
  clusterId?: () => string;
  /** Creates the app's topics once healthy (one node of a cluster does it). */
  prepareTopics: boolean;
  /** The single-node stack's extras: the fault matrix's PROXIED listener and the JMX exporter. */
  standalone?: boolean;
}

function writeServerProperties(dir: string, o: KafkaNodeOptions): string {
  const { host, port } = hostPort(o.address);
  const controllerPort = port + 1;
  const file = join(dir, 'server.properties');
  const props = {
    'process.roles': 'broker,controller',
    'node.id': String(o.nodeId),
    'controller.quorum.voters': o.voters,
    // PROXIED (single node only): for the fault matrix's Toxiproxy (stack/services/toxiproxy.ts): the
    // broker listens on the port + 3 and advertises the port + 4, where the proxy listens, so that
    // clients which bootstrap through the proxy stay behind it. Nothing connects to it outside the drill.
    listeners: o.standalone
      ? `PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort},PROXIED://${host}:${port + 3}`
      : `PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort}`,
    'advertised.listeners': o.standalone
      ? `PLAINTEXT://${host}:${port},PROXIED://${host}:${port + 4}`
      : `PLAINTEXT://${host}:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT',
    'log.dirs': join(dir, 'logs'),
    'num.partitions': '4',
    'auto.create.topics.enable': 'false',
    'offsets.topic.replication.factor': String(o.replication),
    'transaction.state.log.replication.factor': String(o.replication),
    'transaction.state.log.min.isr': String(o.minInsync),
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

const jvmArgs = (heap: string): string[] => [
  '-Xms256m',
  `-Xmx${heap}`,
  // One collector thread: the heap is small and a concurrent collector's threads cost more than
  // its short pauses.
  '-XX:+UseSerialGC',
  `-Dlog4j2.configurationFile=${log4j}`,
  '-cp',
  classpath,
];

/** A random cluster id. Kafka's own ids never start with '-' (one in 64 random ones would): the
 * storage tool's argument parser took such an id for an option and the first start of a new stack failed. */
export function newKafkaClusterId(): string {
  let clusterId: string;
  do clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-'));
  return clusterId;
}

export function kafkaNode(o: KafkaNodeOptions): StackService {
  const heap = o.clusterSize > 1 ? '512m' : '768m';
  const args = jvmArgs(heap);
  const probe = (): Kafka =>
    new Kafka({ clientId: 'adclick-stack-probe', brokers: [o.address], logLevel: logLevel.NOTHING });
  return {
    name: o.name,
    address: o.address,
    startupTimeoutMs: 90_000,
    install() {
      return ensureMavenJars('kafka', resolve('stack/maven/kafka'), libDir);
    },
    async start() {
      const dir = dataDir(o.name);
      const properties = writeServerProperties(dir, o);
      if (!existsSync(join(dir, 'logs', 'meta.properties'))) {
        const clusterId = o.clusterId?.() ?? newKafkaClusterId();
        await runStep(o.name, 'java', [
          ...args,
          'kafka.tools.StorageTool',
          'format',
          `--cluster-id=${clusterId}`,
          '-c',
          properties,
        ]);
      }
      const agent = o.standalone ? jmxExporterJvmArgs('kafka') : [];
      startDetached(o.name, 'java', [...agent, ...args, 'kafka.Kafka', properties]);
    },
    async healthy() {
      // This node itself answers (a cluster's other brokers may be down).
      const admin = probe().admin({ retry: { retries: 0 } });
      try {
        await admin.connect();
        const { brokers } = await admin.describeCluster();
        return brokers.some((b) => b.nodeId === o.nodeId);
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    async prepare() {
      if (!o.prepareTopics) return;
      const admin = createKafka('adclick-stack').admin();
      await admin.connect();
      try {
        // A replication factor of N needs N brokers registered.
        const deadline = Date.now() + 120_000;
        while ((await admin.describeCluster()).brokers.length < o.clusterSize) {
          if (Date.now() > deadline)
            throw new Error(`${o.name}: fewer than ${o.clusterSize} brokers registered`);
          await sleep(1000);
        }
        // Right after a topic is made, a broker may not know its partitions yet: try again.
        for (let attempt = 1; ; attempt++) {
          try {
            for (const line of describeTopicChanges(await ensureTopics(admin, appTopics()))) log(line);
            break;
          } catch (e) {
            if (attempt >= 10) throw e;
            await sleep(2000);
          }
        }
      } finally {
        await admin.disconnect();
      }
    },
  };
}

const single = hostPort(kafkaBrokers()[0]!);

/** The local stack's one node (KAFKA_BROKERS' first address). */
export const kafka: StackService = kafkaNode({
  name: 'kafka',
  nodeId: 1,
  address: `${single.host}:${single.port}`,
  voters: `1@${single.host}:${single.port + 1}`,
  replication: 1,
  minInsync: 1,
  clusterSize: 1,
  prepareTopics: true,
  standalone: true,
});
