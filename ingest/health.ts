// Operations routes of the click service: /healthz (the process is up), /readyz (Kafka, PostgreSQL
// and Redis answer; the body names any that does not) and /metrics (Prometheus text).
import express, { type Router } from 'express';
import type { Admin } from 'kafkajs';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { metricsText } from '../common/metrics.js';
import { registry } from '../common/metrics.js';

export interface ReadinessDeps {
  pool: pg.Pool;
  redis: Redis;
  kafkaAdmin: Admin;
  /** Under node:cluster: fetches the metrics summed over all workers (see main.ts). */
  metrics?: () => Promise<string>;
  timeoutMs?: number;
}

type Probe = () => Promise<unknown>;

export function healthRouter(deps: ReadinessDeps): Router {
  const router = express.Router();
  const timeoutMs = deps.timeoutMs ?? 1500;
  let adminConnected: Promise<void> | undefined;
  const probes: Record<string, Probe> = {
    kafka: async () => {
      adminConnected ??= deps.kafkaAdmin.connect().catch((e: unknown) => {
        adminConnected = undefined;
        throw e;
      });
      await adminConnected;
      await deps.kafkaAdmin.describeCluster();
    },
    postgres: () => deps.pool.query('select 1'),
    redis: () => deps.redis.ping(),
  };

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      Object.entries(probes).map(async ([name, probe]) => {
        try {
          await withTimeout(probe(), timeoutMs, `${name} did not answer within ${timeoutMs} ms`);
          return [name, 'ok'] as const;
        } catch (e) {
          return [name, (e as Error).message || 'down'] as const;
        }
      }),
    );
    const down = results.filter(([, r]) => r !== 'ok').map(([n]) => n);
    const checks = Object.fromEntries(results);
    if (down.length === 0) res.json({ status: 'ready', checks });
    else
      res.status(503).json({
        status: 'not_ready',
        checks,
        error: { code: 'not_ready', message: `not ready: ${down.join(', ')} down` },
      });
  });

  router.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await (deps.metrics ?? metricsText)());
  });
  return router;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}
