// The API process (`npm run api`): the catalogue and impressions API, the merged metrics API, the
// operators' endpoints and the dashboard, on API_PORT; the click process hands it every request that
// is not a click, so users keep one base URL. It serves its own /healthz, /readyz (PostgreSQL and the
// speed store) and /metrics (query latencies). Clicks never run here: a heavy advertiser query
// takes no CPU from redirects. `createApiApp` is the whole app, used as-is by the tests.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import express, { type Express } from 'express';
import type pg from 'pg';
import { authenticate } from '../common/auth.js';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { healthRouter } from '../common/health.js';
import { sendApiError } from '../common/http-errors.js';
import type { SpeedStore } from '../common/speed-store.js';
import { createTemporalClient } from '../common/temporal.js';
import { isoSeconds } from '../common/time.js';
import { startBackfill } from '../batch-layer/operations.js';
import { catalogueRouter } from '../ingest/catalogue-router.js';
import { createServingRouter, dashboardStatic, type StartBackfill } from '../serving-layer/router.js';
import { createSpeedStore } from '../speed-layer/speed-store.js';

export interface ApiDeps {
  pool: pg.Pool;
  speedStore: SpeedStore;
  /** For POST /v1/admin/backfills; default: a client connected on first use. */
  temporalClient?: Client;
  signingSecret?: string;
  impressionTtlSeconds?: number;
  speedTimeoutMs?: number;
  now?: () => number;
}

export function createApiApp(deps: ApiDeps): Express {
  const { pool, speedStore } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.use(
    healthRouter({ probes: { postgres: () => pool.query('select 1'), speed: () => speedStore.ping() } }),
  );
  app.use(dashboardStatic());
  app.use(
    catalogueRouter({
      pool,
      signingSecret: deps.signingSecret ?? config.ADCLICK_SIGNING_SECRET,
      impressionTtlSeconds: deps.impressionTtlSeconds ?? config.ADCLICK_IMPRESSION_TTL_S,
      now: deps.now,
    }),
  );
  app.use('/v1', express.json({ limit: '16kb' }), authenticate(pool));
  app.use(
    createServingRouter({
      pool,
      speedStore,
      startBackfill: temporalBackfill(deps.temporalClient),
      speedTimeoutMs: deps.speedTimeoutMs,
      now: deps.now,
    }),
  );
  app.use((_req, res) => sendApiError(res, 404, 'not_found', 'no such route'));
  return app;
}

/** Starts the backfill workflow of a window (idempotent per window), connecting to Temporal lazily. */
function temporalBackfill(given?: Client): StartBackfill {
  let client: Promise<Client> | undefined = given && Promise.resolve(given);
  return async ({ from, to }) => {
    client ??= createTemporalClient().catch((e: unknown) => {
      client = undefined;
      throw e;
    });
    return startBackfill(await client, { from: isoSeconds(from), to: isoSeconds(to) });
  };
}

/** Listens on `port` (0: any free port) and resolves with the base URL. */
export async function listen(
  app: Express,
  port: number,
  host: string,
): Promise<{ server: Server; url: string }> {
  const server = app.listen(port, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.keepAliveTimeout = 65_000; // the click process's proxy holds connections open
  const { address, port: bound } = server.address() as AddressInfo;
  return { server, url: `http://${address.includes(':') ? `[${address}]` : address}:${bound}` };
}

async function main(): Promise<void> {
  const pool = createPool(10);
  await migrate(pool);
  const speedStore = createSpeedStore();
  const { server, url } = await listen(createApiApp({ pool, speedStore }), config.API_PORT, config.HOST);
  console.log(`[api] listening on ${url} (speed store: ${config.SPEED_STORE})`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeIdleConnections();
    void Promise.allSettled([speedStore.close(), pool.end()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => {
    console.error(`[api] failed to start: ${e.stack ?? e.message}`);
    process.exit(1);
  });
}
