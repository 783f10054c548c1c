// Picks the speed layer's read store by config.SPEED_STORE: Pinot (default) or PostgreSQL.
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import type { SpeedStore } from '../common/speed-store.js';
import { PinotSpeedStore } from './pinot-speed-store.js';
import { PostgresSpeedStore } from './postgres-speed-store.js';

export function createSpeedStore(store: 'pinot' | 'postgres' = config.SPEED_STORE): SpeedStore {
  if (store === 'postgres')
    return new PostgresSpeedStore(
      createPool(5, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS }),
      true,
    );
  return new PinotSpeedStore();
}
