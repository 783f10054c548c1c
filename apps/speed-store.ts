// The speed layer's read store for the processes that query it (apps/api.ts, apps/worker.ts), picked
// by config.SPEED_STORE: Pinot (default) or PostgreSQL, with a pool of its own that the store closes.
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import type { SpeedStore } from '../common/speed-store.js';
import { PinotSpeedStore } from '../speed-layer/pinot-speed-store.js';
import { PostgresSpeedStore } from '../speed-layer/postgres-speed-store.js';

export function createSpeedStore(store: 'pinot' | 'postgres' = config.SPEED_STORE): SpeedStore {
  if (store === 'postgres')
    return new PostgresSpeedStore(
      createPool(5, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS }),
      true,
    );
  return new PinotSpeedStore(config.PINOT_BROKER_URL, config.SPEED_PINOT_TABLE);
}
