// A database of the stack's PostgreSQL by name: tests that need one of their own create it and drop
// it at the end (DATABASE_URL with another path).
import type pg from 'pg';
import { config } from '../../common/config.js';
import { createPool } from '../../common/db.js';

export function databaseUrl(name: string): string {
  const u = new URL(config.DATABASE_URL);
  u.pathname = `/${name}`;
  return u.href;
}

/**
 * A pool on the database `name`. The test's `drop database … with (force)` at the end may terminate
 * a connection that the ended pool is still closing: pg-pool's `end()` resolves before its clients'
 * sockets have closed, and the server's "terminating connection due to administrator command"
 * then reaches the pool as an 'error' event, which crashes the test file if nobody listens.
 */
export function databasePool(name: string, max: number): pg.Pool {
  // createPool listens for connection errors; a test has no use for their log lines.
  return createPool(max, { connectionString: databaseUrl(name), log: () => undefined });
}
