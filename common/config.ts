// The one place that reads the environment. Every address, port, key and tuning knob of the app
// and of the local stack is validated here once and handed out typed; the defaults make a local
// run work with no setup, and each can be overridden to point at a remote cluster instead.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();

const schema = z.object({
  // HTTP
  PORT: port.default(8080),
  CLICK_PORT: port.optional(),
  HOST: z.string().default('127.0.0.1'),
  // Keys and secrets (dev defaults only; set real ones in production)
  ADCLICK_ADMIN_KEY: z.string().min(8).default('dev-admin-key'),
  ADCLICK_SIGNING_SECRET: z.string().min(16).default('dev-signing-secret-change-me'),
  ADCLICK_IMPRESSION_TTL_S: positiveInt.default(24 * 3600),
  // Kafka
  KAFKA_BROKERS: z.string().default('127.0.0.1:9092'),
  KAFKA_CLICKS_TOPIC: z.string().default('clicks'),
  KAFKA_CLICKS_PARTITIONS: positiveInt.default(4),
  KAFKA_MINUTE_COUNTS_TOPIC: z.string().default('minute_counts'),
  // PostgreSQL
  DATABASE_URL: z.string().default('postgres://adclick:adclick@127.0.0.1:5432/adclick'),
  // Redis
  REDIS_URL: z.string().default('redis://127.0.0.1:6379'),
  // S3-compatible object store
  S3_ENDPOINT: z.string().url().default('http://127.0.0.1:9000'),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().default('adclick'),
  S3_ACCESS_KEY_ID: z.string().default('adclick'),
  S3_SECRET_ACCESS_KEY: z.string().default('adclick-dev-secret'),
  // Temporal
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_TASK_QUEUE: z.string().default('adclick-batch'),
  // Pinot
  PINOT_CONTROLLER_URL: z.string().url().default('http://127.0.0.1:9002'),
  PINOT_BROKER_URL: z.string().url().default('http://127.0.0.1:8099'),
  PINOT_ZK_PORT: port.default(2191),
  SPEED_STORE: z.enum(['pinot', 'postgres']).default('pinot'),
  // Local stack: downloads and builds are cached outside the repository; runtime data, logs and
  // PIDs live in the checkout's .stack/ folder.
  ADCLICK_CACHE_DIR: z.string().default(join(homedir(), '.cache', 'adclick')),
  ADCLICK_STACK_DIR: z.string().default(resolve('.stack')),
});

export type Config = z.infer<typeof schema>;

function load(env: NodeJS.ProcessEnv): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new Error(`Invalid configuration in the environment:\n${problems}`);
  }
  return parsed.data;
}

export const config: Config = load(process.env);

/** host and port of a `host:port` string, e.g. the first Kafka broker. */
export function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

export function urlPort(url: string): number {
  const u = new URL(url);
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
}

export const kafkaBrokers = (): string[] => config.KAFKA_BROKERS.split(',').map((b) => b.trim());
