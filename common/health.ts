// Operations routes every HTTP process serves: /healthz (the process is up), /readyz (each
// dependency the process uses answers; the body names any that does not) and /metrics (Prometheus
// text). Each process passes its own probes: the click process Kafka, PostgreSQL and Redis; the API
// process PostgreSQL and the speed store.
//
// These routes are public, so they say no more than needed: /readyz names a dependency that is down
// but gives the reason (an error naming hosts and ports) only to the admin key, and logs it; in
// production /metrics needs the admin key too (API.md: not public there).
import type { Server } from 'node:http';
import express, { type Request, type RequestHandler, type Router } from 'express';
import { Gauge } from 'prom-client';
import { bearerToken, isAdminKey } from './auth.js';
import { config, production } from './config.js';
import { requestId, requestIdOf, sendApiError } from './http-errors.js';
import { metricsText, registry } from './metrics.js';
import { z } from 'zod';
import { json, type ApiRoute } from './openapi.js';
import { withDeadline } from './wait.js';

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
          await withDeadline(probe(), timeoutMs, `${name} did not answer within ${timeoutMs} ms`);
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

const dependencyUp = new Gauge({
  name: 'adclick_dependency_up',
  help: 'Whether a dependency this process needs answered its last check (1) or not (0)',
  labelNames: ['dependency'] as const,
  registers: [registry],
});

/** A dependency checked in the background: its last answer, for /readyz and for prompt 503s. */
export interface DependencyWatch {
  readonly name: string;
  readonly up: boolean;
  /** Why it is down (internal: hosts, ports; for logs and the admin key only). */
  readonly reason: string | undefined;
  /** A /readyz probe that answers at once from the last check. */
  readonly probe: Probe;
  stop(): void;
}

/**
 * Checks `check` every `everyMs` (ADCLICK_DEPENDENCY_CHECK_MS), each within `timeoutMs`, and logs
 * each change (down with the reason, back). One check at a time: a hung dependency is down after
 * `timeoutMs` and no checks pile up behind it. Down until the first check answers.
 */
export function watchDependency(
  name: string,
  check: Probe,
  opts: { everyMs?: number; timeoutMs?: number; log?: (message: string) => void } = {},
): DependencyWatch {
  const everyMs = opts.everyMs ?? config.ADCLICK_DEPENDENCY_CHECK_MS;
  const timeoutMs = opts.timeoutMs ?? 1500;
  const log = opts.log ?? ((m: string) => console.error(m));
  let up = false;
  let checked = false;
  let reason: string | undefined = 'not checked yet';
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  dependencyUp.set({ dependency: name }, 0);

  const set = (nowUp: boolean, why?: string): void => {
    if (checked && nowUp !== up) log(nowUp ? `[${name}] is back` : `[${name}] is down: ${why}`);
    else if (!checked && !nowUp) log(`[${name}] is not reachable yet: ${why}`);
    checked = true;
    up = nowUp;
    reason = nowUp ? undefined : why;
    dependencyUp.set({ dependency: name }, nowUp ? 1 : 0);
  };

  const run = async (): Promise<void> => {
    const pending = Promise.resolve().then(check);
    const timedOut = setTimeout(() => set(false, `did not answer within ${timeoutMs} ms`), timeoutMs);
    try {
      await pending;
      clearTimeout(timedOut);
      set(true);
    } catch (e) {
      clearTimeout(timedOut);
      set(false, (e as Error).message || String(e));
    }
    if (!stopped) timer = setTimeout(() => void run(), everyMs);
  };
  void run();

  return {
    name,
    get up() {
      return up;
    },
    get reason() {
      return reason;
    },
    probe: () => (up ? Promise.resolve() : Promise.reject(new Error(reason ?? 'down'))),
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * Express middleware: a prompt 503 (with Retry-After) while one of `watches` is down, instead of a
 * request that waits for a connection or a statement deadline. `what` says what is unavailable.
 */
export function unavailableWhileDown(watches: DependencyWatch[], what: string): RequestHandler {
  return (_req, res, next) => {
    const down = watches.find((w) => !w.up);
    if (!down) return next();
    res.setHeader('retry-after', '5');
    sendApiError(
      res,
      503,
      'unavailable',
      `${what} is unavailable right now (${down.name} does not answer); retry later`,
    );
  };
}

/**
 * /healthz, /readyz and /metrics on their own port, for the processes with no HTTP API (archiver,
 * worker, speed layer). A port already taken is logged, not fatal: the process keeps working.
 */
export function serveHealth(port: number, host: string, opts: HealthOptions): Server {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId, healthRouter(opts));
  const server = app.listen(port, host);
  server.on('error', (e: Error) =>
    (opts.log ?? console.error)(`/metrics and /readyz not served on ${host}:${port}: ${e.message}`),
  );
  return server;
}
