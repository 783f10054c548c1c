// Operations routes every HTTP process serves: /healthz (the process is up), /readyz (each
// dependency the process uses answers; the body names any that does not) and /metrics (Prometheus
// text). Each process passes its own probes: the click process Kafka, PostgreSQL and Redis; the API
// process PostgreSQL and the speed store.
import express, { type Router } from 'express';
import { metricsText, registry } from './metrics.js';

/** Resolves when the dependency answers; rejects with the reason otherwise. */
export type Probe = () => Promise<unknown>;

export interface HealthOptions {
  probes: Record<string, Probe>;
  /** Where /metrics gets its text (the click process: summed over its cluster's workers). */
  metrics?: () => Promise<string>;
  timeoutMs?: number;
}

export function healthRouter(opts: HealthOptions): Router {
  const router = express.Router();
  const timeoutMs = opts.timeoutMs ?? 1500;

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      Object.entries(opts.probes).map(async ([name, probe]) => {
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
    res.type(registry.contentType).send(await (opts.metrics ?? metricsText)());
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
