// Kafka client construction and the app's topics, shared by every layer. Each topic has one
// definition (partitions, replication, retention, cleanup policy), and `ensureTopics` applies it on
// every start: a missing topic is created, an existing one grows to the configured partitions and
// gets the configured settings, so the knobs work on a live system and not only on a new one.
import kafkajs, {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type IResourceConfigEntry,
  type ITopicConfig,
  type ITopicMetadata,
  type KafkaConfig,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import { config, kafkaBrokers } from './config.js';
// Before any client exists: kafkajs' request queues otherwise wake the process every millisecond.
import './kafkajs-idle-loop.js';

// Not named imports: Node's ESM loader does not see these among kafkajs' CommonJS exports (only
// bundlers such as Vitest's do), so a named import fails when a process starts.
const { ConfigResourceTypes, ConfigSource } = kafkajs;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * Every producer and consumer refreshes its topic metadata this often unless its caller says
 * otherwise: kafkajs' default (5 min) is how long partitions added to `clicks` stay unused by the
 * click producers and unread by the consumer groups (they rejoin when their metadata shows them).
 */
class AppKafka extends Kafka {
  constructor(
    cfg: KafkaConfig,
    private readonly metadataMaxAge: number,
  ) {
    super(cfg);
  }

  override producer(cfg: ProducerConfig = {}): Producer {
    return super.producer({ metadataMaxAge: this.metadataMaxAge, ...cfg });
  }

  override consumer(cfg: ConsumerConfig): Consumer {
    return super.consumer({ metadataMaxAge: this.metadataMaxAge, ...cfg });
  }
}

/**
 * `quiet` silences the client's own error log, for probes that expect a broker to be down (`probe`:
 * also no retries and a short request deadline, for a readiness check);
 * `metadataMaxAgeMs` overrides KAFKA_METADATA_MAX_AGE_MS for the producers and consumers it makes.
 */
export function createKafka(
  clientId: string,
  opts: { quiet?: boolean; metadataMaxAgeMs?: number; probe?: boolean } = {},
): Kafka {
  return new AppKafka(
    {
      clientId,
      brokers: kafkaBrokers(),
      logLevel: opts.quiet || opts.probe ? logLevel.NOTHING : logLevel.ERROR,
      connectionTimeout: 3000,
      // `probe`: a readiness check answers within its own deadline, without retries.
      ...(opts.probe && { requestTimeout: 1500 }),
      retry: opts.probe ? { retries: 0 } : { retries: 5, initialRetryTime: 200 },
    },
    opts.metadataMaxAgeMs ?? config.KAFKA_METADATA_MAX_AGE_MS,
  );
}

/** One topic as the app wants it. `configEntries` are kept in force on every ensureTopics. */
export interface TopicSpec extends ITopicConfig {
  numPartitions: number;
  replicationFactor: number;
  configEntries: IResourceConfigEntry[];
  /** Keep at least as many partitions as this topic has (minute_counts follows clicks). */
  partitionsFollow?: string;
}

/** Replication factor and min.insync.replicas from the configuration, checked against each other. */
export function replication(
  factor = config.KAFKA_REPLICATION_FACTOR,
  minInsync = config.KAFKA_MIN_INSYNC_REPLICAS,
): { factor: number; minInsync: number } {
  if (minInsync > factor) {
    throw new Error(
      `KAFKA_MIN_INSYNC_REPLICAS (${minInsync}) is above KAFKA_REPLICATION_FACTOR (${factor}): every acks=all ` +
        'write would fail with NOT_ENOUGH_REPLICAS; lower it or raise the replication factor',
    );
  }
  return { factor, minInsync };
}

const entries = (settings: Record<string, string>): IResourceConfigEntry[] =>
  Object.entries(settings).map(([name, value]) => ({ name, value }));

/** The click log: keyed by adId:salt, kept KAFKA_CLICKS_RETENTION_HOURS for the consumers to read. */
export function clicksTopicSpec(opts: { topic?: string; partitions?: number } = {}): TopicSpec {
  const { factor, minInsync } = replication();
  return {
    topic: opts.topic ?? config.KAFKA_CLICKS_TOPIC,
    numPartitions: opts.partitions ?? config.KAFKA_CLICKS_PARTITIONS,
    replicationFactor: factor,
    configEntries: entries({
      'cleanup.policy': 'delete',
      'retention.ms': String(config.KAFKA_CLICKS_RETENTION_HOURS * HOUR_MS),
      'min.insync.replicas': String(minInsync),
    }),
  };
}

/**
 * The speed layer's count rows for Pinot: deltas (the default), which Pinot sums, so the topic is
 * never compacted; or cumulative parts read with an upsert (the form before), where compaction keeps
 * one record per key, but the keys of closed minutes are never written again (and a message of
 * several rows has a key of its own). Either way only a time retention shrinks the topic: it matches the speed store's
 * (SPEED_PINOT_RETENTION_DAYS). It has at least as many partitions as `clicks`, because each clicks
 * partition's parts go to the same-numbered one.
 */
export function minuteCountsTopicSpec(
  opts: {
    topic?: string;
    clicksTopic?: string;
    partitions?: number;
    retentionDays?: number;
    /** What its rows say (SPEED_PINOT_COUNTS): deltas must never be compacted away. */
    counts?: 'deltas' | 'cumulative';
  } = {},
): TopicSpec {
  const { factor, minInsync } = replication();
  const days = opts.retentionDays ?? config.SPEED_PINOT_RETENTION_DAYS;
  const counts = opts.counts ?? config.SPEED_PINOT_COUNTS;
  return {
    topic: opts.topic ?? config.KAFKA_MINUTE_COUNTS_TOPIC,
    numPartitions: opts.partitions ?? config.KAFKA_CLICKS_PARTITIONS,
    replicationFactor: factor,
    configEntries: entries({
      // Every delta counts; a cumulative row only needs its latest value per key.
      'cleanup.policy': counts === 'deltas' ? 'delete' : 'compact,delete',
      'retention.ms': String(days * DAY_MS),
      'min.insync.replicas': String(minInsync),
    }),
    partitionsFollow: opts.clicksTopic ?? config.KAFKA_CLICKS_TOPIC,
  };
}

/**
 * The compacted topic of ad changes (catalogue/relay.ts writes it, the click processes' feed reads
 * it, ingest/catalogue-feed.ts): one record per ad survives compaction (its latest row).
 */
export function adChangesTopicSpec(topic: string): TopicSpec {
  const { factor, minInsync } = replication();
  return {
    topic,
    numPartitions: 4,
    replicationFactor: factor,
    configEntries: entries({
      'cleanup.policy': 'compact',
      'min.insync.replicas': String(minInsync),
      // Tombstones of deleted ads are kept a day so a replica that was away a while still sees them.
      'delete.retention.ms': String(DAY_MS),
    }),
  };
}

/** The topics the app needs, in the order ensureTopics must see them (clicks before its follower). */
export function appTopics(): TopicSpec[] {
  return [clicksTopicSpec(), minuteCountsTopicSpec()];
}

/** What one ensureTopics call changed, for the caller's log and for tests. */
export interface TopicChanges {
  created: string[];
  grown: Array<{ topic: string; from: number; to: number }>;
  altered: Array<{ topic: string; settings: Record<string, { from: string | null; to: string }> }>;
  /** What it cannot fix by itself (a replication factor below the configured one). */
  warnings: string[];
}

/** Partitions of a topic as the brokers see them now (undefined if the topic does not exist). */
export async function partitionCount(admin: Admin, topic: string): Promise<number | undefined> {
  return (await topicMetadata(admin, topic))?.partitions.length;
}

// Asks for the list first: kafkajs logs an ERROR for metadata of a topic that does not exist.
async function topicMetadata(admin: Admin, topic: string): Promise<ITopicMetadata | undefined> {
  if (!(await admin.listTopics()).includes(topic)) return undefined;
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0];
}

/**
 * Grows `topic` to `count` partitions unless it has that many already. Safe against a concurrent
 * grower (another process starting at the same time): Kafka then answers INVALID_PARTITIONS and the
 * count is read again. Returns the partition count before the call.
 */
export async function growPartitions(admin: Admin, topic: string, count: number): Promise<number> {
  const before = (await partitionCount(admin, topic)) ?? 0;
  if (before >= count) return before;
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count }] });
  } catch (e) {
    const now = (await partitionCount(admin, topic)) ?? 0;
    if (now < count) throw e;
  }
  return before;
}

/**
 * Creates the topics that are missing, grows existing ones to their partition count (never
 * shrinks: Kafka cannot), and applies each topic's `configEntries` to existing topics too. Other
 * topic-level settings an operator set by hand are kept. The replication factor of an existing topic
 * is only checked: raising it moves data (kafka-reassign-partitions), which is an operator's call.
 */
export async function ensureTopics(
  admin: Admin,
  topics: Array<ITopicConfig & { partitionsFollow?: string }>,
): Promise<TopicChanges> {
  const changes: TopicChanges = { created: [], grown: [], altered: [], warnings: [] };
  for (const spec of topics) {
    let wanted = spec.numPartitions ?? 1;
    if (spec.partitionsFollow)
      wanted = Math.max(wanted, (await partitionCount(admin, spec.partitionsFollow)) ?? 0);
    const current = await topicMetadata(admin, spec.topic);
    if (!current) {
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: spec.topic,
            numPartitions: wanted,
            replicationFactor: spec.replicationFactor,
            configEntries: spec.configEntries,
          },
        ],
      });
      // false: another process created it meanwhile; fall through to grow and configure it.
      if (created) {
        changes.created.push(spec.topic);
        continue;
      }
    }
    const before = await growPartitions(admin, spec.topic, wanted);
    if (before < wanted) changes.grown.push({ topic: spec.topic, from: before, to: wanted });
    const replicas = current?.partitions[0]?.replicas.length;
    if (spec.replicationFactor !== undefined && replicas !== undefined && replicas < spec.replicationFactor) {
      changes.warnings.push(
        `${spec.topic} has replication factor ${replicas}, configured ${spec.replicationFactor}: ` +
          'reassign its partitions to more brokers (kafka-reassign-partitions.sh); ensureTopics does not move data',
      );
    }
    const altered = await applyTopicConfig(admin, spec.topic, spec.configEntries ?? []);
    if (altered) changes.altered.push({ topic: spec.topic, settings: altered });
  }
  return changes;
}

/**
 * Sets `wanted` on an existing topic unless it is in force already. kafkajs speaks only the
 * non-incremental AlterConfigs, which replaces ALL of a topic's own settings: the request therefore
 * carries the settings the topic has now (its TOPIC_CONFIG entries) with the wanted ones on top.
 */
async function applyTopicConfig(
  admin: Admin,
  topic: string,
  wanted: IResourceConfigEntry[],
): Promise<Record<string, { from: string | null; to: string }> | null> {
  if (wanted.length === 0) return null;
  const described = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    includeSynonyms: false,
  });
  const entries = described.resources[0]?.configEntries ?? [];
  const effective = new Map(entries.map((e) => [e.configName, e.configValue]));
  const own = new Map(
    entries
      .filter((e) => e.configSource === ConfigSource.TOPIC_CONFIG)
      .map((e) => [e.configName, e.configValue]),
  );
  const diff: Record<string, { from: string | null; to: string }> = {};
  for (const { name, value } of wanted) {
    if (own.get(name) === value) continue;
    diff[name] = { from: effective.get(name) ?? null, to: value };
    own.set(name, value);
  }
  if (Object.keys(diff).length === 0) return null;
  await admin.alterConfigs({
    validateOnly: false,
    resources: [
      {
        type: ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [...own].map(([name, value]) => ({ name, value })),
      },
    ],
  });
  return diff;
}

/** One log line per change and warning of an ensureTopics call (none when nothing changed). */
export function describeTopicChanges(changes: TopicChanges): string[] {
  return [
    ...changes.created.map((t) => `created topic ${t}`),
    ...changes.grown.map((g) => `grew ${g.topic} from ${g.from} to ${g.to} partitions`),
    ...changes.altered.map(
      (a) =>
        `set ${a.topic}: ${Object.entries(a.settings)
          .map(([k, v]) => `${k} ${v.from ?? '(unset)'} → ${v.to}`)
          .join(', ')}`,
    ),
    ...changes.warnings.map((w) => `warning: ${w}`),
  ];
}

/**
 * Connects an admin of `kafka`, applies `topics` (ensureTopics) and logs each change; the start-up
 * topics check of the processes that own topics (wrap it in keepTrying to wait for Kafka).
 */
export async function ensureTopicsLogged(
  kafka: Kafka,
  topics: Parameters<typeof ensureTopics>[1],
  log: (line: string) => void,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const line of describeTopicChanges(await ensureTopics(admin, topics))) log(line);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
