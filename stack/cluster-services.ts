// The local cluster's services (stack/cluster.ts sets the environment before importing this): the
// single-node stack's PostgreSQL, Redis, S3 and Temporal, three Kafka nodes and Pinot with two
// server JVMs, from the same service definitions with other parameters.
import { kafkaBrokers } from '../common/config.js';
import type { StackService } from './service.js';
import { clusterPinotServers } from './cluster.js';
import { kafkaNode, newKafkaClusterId } from './services/kafka.js';
import { pinotServer, pinotService } from './services/pinot.js';
import { postgres } from './services/postgres.js';
import { redis } from './services/redis.js';
import { s3 } from './services/s3.js';
import { temporal } from './services/temporal.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stackDir } from './runtime.js';

/** One cluster id for the three nodes, kept beside their data. */
function clusterId(): string {
  const file = join(stackDir, 'data', 'kafka-cluster-id');
  if (!existsSync(file)) {
    mkdirSync(join(stackDir, 'data'), { recursive: true });
    writeFileSync(file, newKafkaClusterId());
  }
  return readFileSync(file, 'utf8').trim();
}

export function clusterServices(): StackService[] {
  const brokers = kafkaBrokers();
  const voters = brokers
    .map((b, i) => {
      const at = b.lastIndexOf(':');
      return `${i + 1}@${b.slice(0, at)}:${Number(b.slice(at + 1)) + 1}`;
    })
    .join(',');
  const kafkas = brokers.map((address, i) =>
    kafkaNode({
      name: `kafka-${i + 1}`,
      nodeId: i + 1,
      address,
      voters,
      replication: 3,
      minInsync: 2,
      clusterSize: brokers.length,
      clusterId,
      prepareTopics: i === brokers.length - 1,
    }),
  );
  return [
    postgres,
    redis,
    s3,
    ...kafkas,
    temporal,
    pinotService(false),
    ...clusterPinotServers.map((s) => pinotServer(s.name, s.netty, s.admin)),
  ];
}
