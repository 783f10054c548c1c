// The one way this app makes a Redis client: fail fast instead of queueing commands while Redis is
// down (callers have deadlines and fall back), a deadline on every command (a hung Redis answers
// nothing: REDIS_COMMAND_TIMEOUT_MS), reconnect in the background, and no log line per reconnect
// attempt (each caller answers errors per command; they are counted). Not connected until `connect()`.
import { Redis } from 'ioredis';
import { Counter } from 'prom-client';
import { config } from './config.js';
import { registry } from './metrics.js';

const redisErrors = new Counter({
  name: 'adclick_redis_connection_errors_total',
  help: 'Connection errors of Redis clients (Redis down, hung or restarted); clients reconnect by themselves',
  registers: [registry],
});

export function createRedis(
  url: string = config.REDIS_URL,
  opts: { autoPipelining?: boolean; commandTimeoutMs?: number } = {},
): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: opts.autoPipelining ?? false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: opts.commandTimeoutMs ?? config.REDIS_COMMAND_TIMEOUT_MS,
    keepAlive: 10_000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on('error', () => redisErrors.inc());
  return redis;
}
