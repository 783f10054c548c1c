// Operations routes every HTTP process serves: /healthz (the process is up), /readyz (each
// dependency the process uses answers; the body names any that does not) and /metrics (Prometheus
// text). Each process passes its own probes: the click process Kafka, PostgreSQL and Redis; the API
// process PostgreSQL and the speed store.
//
// These routes are public, so they say no more than needed: /readyz names a dependency that is down
// but gives the reason (an error naming hosts and ports) only to the admin key, and logs it; in
// production /metrics needs the admin key too (API.md: not public there).
import express, { type Request, type Router } from 'express';
import { bearerToken, isAdminKey } from './auth.js';
import { production } from './config.js';
import { requestIdOf, sendApiError } from './http-errors.js';
import { metricsText, registry } from './metrics.js';
import { z } from 'zod';
import { json, type ApiRoute } from './openapi.js';

/** /healthz, /readyz and /metrics for the OpenAPI document. */
export const healthRoutes: ApiRoute[] = [
  {
    method: 'get',
    path: '/healthz',
    summary: 'The process is up',
    responses: { '200': json('up', z.object({ status: z.literal('ok') })) },
  },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Every dependency of the process answers (the reason of a failure only with the admin key)',
    responses: {
      '200': json(
        'ready',
        z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.enum(['ok', 'down'])) }),
      ),
      '503': json(
        'a dependency is down: named in checks; details with the admin key',
        z.object({
          status: z.literal('not_ready'),
          checks: z.record(z.string(), z.enum(['ok', 'down'])),
          details: z.record(z.string(), z.string()).optional(),
          error: z.object({ code: z.string(), message: z.string(), requestId: z.string() }),
        }),
      ),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus text (in production only with the admin key)',
    responses: {
      '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } },
      '401': { description: 'production: the admin key is needed' },
    },
  },
];

/** Resolves when the dependency answers; rejects with the reason otherwise. */
export type Probe = () => Promise<unknown>;

export interface HealthOptions {
  probes: Record<string, Probe>;
  /** Listed in /readyz's checks too, but never make the process not ready (it works without them). */
  informational?: Record<string, Probe>;
  /** Where /metrics gets its text (the click process: summed over its cluster's workers). */
  metrics?: () => Promise<string>;
  timeoutMs?: number;
  /** /metrics only with the admin key (default: in production). */
  privateMetrics?: boolean;
  /** Where a failing probe's reason goes (default: console.error), under the request id. */
  log?: (message: string) => void;
}

const isAdmin = (req: Request): boolean => {
  const key = bearerToken(req.headers.authorization);
  return key !== undefined && isAdminKey(key);
};

export function healthRouter(opts: HealthOptions): Router {
  const router = express.Router();
  const timeoutMs = opts.timeoutMs ?? 1500;

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (req, res) => {
    const gating = new Set(Object.keys(opts.probes));
    const results = await Promise.all(
      Object.entries({ ...opts.informational, ...opts.probes }).map(async ([name, probe]) => {
        try {
          await withTimeout(probe(), timeoutMs, `${name} did not answer within ${timeoutMs} ms`);
          return [name, 'ok'] as const;
        } catch (e) {
          return [name, (e as Error).message || 'down'] as const;
        }
      }),
    );
    const down = results.filter(([, r]) => r !== 'ok');
    const checks = Object.fromEntries(results.map(([name, r]) => [name, r === 'ok' ? 'ok' : 'down']));
    if (!down.some(([name]) => gating.has(name))) {
      res.json({ status: 'ready', checks });
      return;
    }
    const requestId = requestIdOf(res);
    const log = opts.log ?? ((m: string) => console.error(m));
    log(`[readyz] request ${requestId}: ${down.map(([n, r]) => `${n}: ${r}`).join('; ')}`);
    res.status(503).json({
      status: 'not_ready',
      checks,
      ...(isAdmin(req) && { details: Object.fromEntries(down) }),
      error: { code: 'not_ready', message: `not ready: ${down.map(([n]) => n).join(', ')} down`, requestId },
    });
  });

  const privateMetrics = opts.privateMetrics ?? production;
  router.get('/metrics', async (req, res) => {
    if (privateMetrics && !isAdmin(req)) {
      sendApiError(res, 401, 'unauthorized', 'metrics need the admin key: "Authorization: Bearer <key>"');
      return;
    }
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
