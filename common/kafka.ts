// Kafka client construction and topic setup shared by every layer.
import { Kafka, logLevel, type Admin, type ITopicConfig } from 'kafkajs';
import { config, kafkaBrokers } from './config.js';

/** `quiet` silences the client's own error log, for probes that expect a broker to be down. */
export function createKafka(clientId: string, opts: { quiet?: boolean } = {}): Kafka {
  return new Kafka({
    clientId,
    brokers: kafkaBrokers(),
    logLevel: opts.quiet ? logLevel.NOTHING : logLevel.ERROR,
    connectionTimeout: 3000,
    retry: { retries: 5, initialRetryTime: 200 },
  });
}

/** The topics the app needs; creating them is idempotent. */
export function appTopics(): ITopicConfig[] {
  return [
    { topic: config.KAFKA_CLICKS_TOPIC, numPartitions: config.KAFKA_CLICKS_PARTITIONS, replicationFactor: 1 },
    {
      topic: config.KAFKA_MINUTE_COUNTS_TOPIC,
      numPartitions: config.KAFKA_CLICKS_PARTITIONS,
      replicationFactor: 1,
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
    },
  ];
}

/** Creates the topics that do not exist yet; existing ones are left as they are. */
export async function ensureTopics(admin: Admin, topics: ITopicConfig[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.topic));
  if (missing.length > 0) await admin.createTopics({ topics: missing, waitForLeaders: true });
}
