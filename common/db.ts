// PostgreSQL pool and the versioned migrations in migrations/NNN_name.sql, applied in order, each in
// its own transaction, under an advisory lock so several processes can start at once.
//
// PostgreSQL may die, hang or restart under a running process (docs/dependencies.md): every pool
// answers a connection's error with a log line and a counter instead of crashing the process, every
// statement has a deadline, and a process that starts while PostgreSQL is away migrates in the
// background (`migrateWhenReachable`), retrying with backoff, and reports not-ready until then.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { to as copyTo, type CopyToStreamQuery } from 'pg-copy-streams';
import { Counter } from 'prom-client';
import { config } from './config.js';
import { backoffDelay, sleep } from './wait.js';
import { registry } from './metrics.js';

// bigint columns come back as strings by default; ids stay strings, counts fit in a JS number.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => v);

const connectionErrors = new Counter({
  name: 'adclick_postgres_connection_errors_total',
  help: 'Errors of pooled PostgreSQL connections outside a query (server restarted, killed or unreachable)',
  registers: [registry],
});

export interface PoolOptions {
  /**
   * Deadline of one statement (ms): the server cancels it then, and the client gives up a second
   * later (a hung server cancels nothing). Default: DATABASE_BATCH_STATEMENT_TIMEOUT_MS, the long
   * one for batch jobs and tools; long-running processes pass DATABASE_STATEMENT_TIMEOUT_MS, the
   * click path DATABASE_CLICK_STATEMENT_TIMEOUT_MS.
   */
  statementTimeoutMs?: number;
  /** The database (default: DATABASE_URL). */
  connectionString?: string;
  /** Where connection errors are reported (default: console.error, at most one line per 10 s). */
  log?: (message: string) => void;
}

export function createPool(max = 10, opts: PoolOptions = {}): pg.Pool {
  const statementTimeoutMs = opts.statementTimeoutMs ?? config.DATABASE_BATCH_STATEMENT_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: opts.connectionString ?? config.DATABASE_URL,
    max,
    connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 1000,
    keepAlive: true,
  });
  const log = opts.log ?? rateLimitedLog(10_000);
  const onError = (e: Error): void => {
    connectionErrors.inc();
    log(`[postgres] connection error (the pool replaces the connection): ${e.message}`);
  };
  // An idle connection's error reaches the pool; a checked-out one's reaches the client, which would
  // crash the process if nobody listened (a query in flight gets the error itself, too).
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

function rateLimitedLog(everyMs: number): (message: string) => void {
  let last = 0;
  let skipped = 0;
  return (message) => {
    const now = Date.now();
    if (now - last < everyMs) {
      skipped++;
      return;
    }
    console.error(skipped > 0 ? `${message} (and ${skipped} more since the last line)` : message);
    last = now;
    skipped = 0;
  };
}

// SQLSTATE classes and codes that mean "the server is not there or not taking work now", not "this
// statement is wrong": 08 connection exception, 57P01-57P05 shutdown / cannot connect now / idle
// session, 57014 query_canceled (our statement deadline), 53300 too many connections.
const UNAVAILABLE_CODES = /^(08...|57P0[1-5]|57014|53300)$/;
const UNAVAILABLE_MESSAGES =
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection closed/i;

/** The error says PostgreSQL is away, hung or past the statement deadline (answer 503, retry later). */
export function isDatabaseUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) return true;
  return UNAVAILABLE_MESSAGES.test(e.message);
}

/** Runs `work` in one transaction on a pooled connection: committed if it resolves, rolled back if it throws. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

const MIGRATIONS_DIR = resolve(import.meta.dirname, '..', 'migrations');
const LOCK_ID = 7_262_024; // arbitrary constant shared by every process of this app

/**
 * `sql` (a `COPY … TO STDOUT`) on `client`, as a stream of its text (pg-copy-streams' `to`). pg arms
 * a client-side read deadline for every query (`queryTimeoutMs`, else the pool's `query_timeout`) and
 * clears it from the query's callback, which pg-copy-streams calls for a COPY FROM but not for a COPY
 * TO. Without this, every copy left a timer that kept a process alive for the deadline (the batch
 * pool's 30 minutes: tools/catalogue-click-cpu.ts hung after its last line) and then emitted a late
 * "Query read timeout" on the finished stream. Here the deadline is cleared once the stream ends or
 * closes; while it runs, it stands.
 */
export function copyOut(client: pg.PoolClient, sql: string, queryTimeoutMs?: number): CopyToStreamQuery {
  const stream = copyTo(sql);
  if (queryTimeoutMs !== undefined) Object.assign(stream, { query_timeout: queryTimeoutMs });
  client.query(stream);
  // pg's wrapper of the callback (clearTimeout, then the query's own: none for a COPY TO).
  const clearDeadline = (): void => (stream as { callback?: () => void }).callback?.();
  stream.once('end', clearDeadline);
  stream.once('close', clearDeadline);
  return stream;
}

/** A statement with the client-side deadline of the batch jobs (pg's types omit `query_timeout`). */
function withLongDeadline(text: string, values?: unknown[]): pg.QueryConfig {
  const query = { text, values, query_timeout: config.DATABASE_BATCH_STATEMENT_TIMEOUT_MS + 1000 };
  return query;
}

export async function migrate(pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    // A migration (or the wait for another process's) may take longer than a statement deadline.
    await client.query(`set statement_timeout = ${config.DATABASE_BATCH_STATEMENT_TIMEOUT_MS}`);
    await client.query(withLongDeadline('select pg_advisory_lock($1)', [LOCK_ID]));
    await client.query(
      'create table if not exists schema_migrations (version text primary key, applied_at timestamptz not null default now())',
    );
    const done = new Set(
      (await client.query<{ version: string }>('select version from schema_migrations')).rows.map(
        (r) => r.version,
      ),
    );
    const files = readdirSync(MIGRATIONS_DIR)
      .filter((f) => /^\d{3}_.+\.sql$/.test(f))
      .sort();
    for (const file of files) {
      const version = file.replace(/\.sql$/, '');
      if (done.has(version)) continue;
      await client.query('begin');
      try {
        await client.query(withLongDeadline(readFileSync(join(MIGRATIONS_DIR, file), 'utf8')));
        await client.query('insert into schema_migrations (version) values ($1)', [version]);
        await client.query('commit');
        applied.push(version);
      } catch (e) {
        await client.query('rollback');
        throw new Error(`migration ${file} failed: ${(e as Error).message}`);
      }
    }
  } finally {
    await client.query('select pg_advisory_unlock($1)', [LOCK_ID]).catch(() => undefined);
    await client.query('reset statement_timeout').catch(() => undefined);
    client.release();
  }
  return applied;
}

/** The schema of a process that migrates in the background (`migrateWhenReachable`). */
export interface Migrations {
  /** Resolves once the schema is up to date; never rejects (it retries until then or `stop`). */
  readonly done: Promise<void>;
  readonly migrated: boolean;
  /** For /readyz: resolves once migrated, rejects with why not yet. */
  readonly probe: () => Promise<void>;
  /** Gives up retrying (process shutdown); `done` then never resolves. */
  stop(): void;
}

/**
 * Migrates `pool`'s database now if PostgreSQL answers, else retries with backoff (0.5 s doubling
 * to 10 s, each attempt logged) until it does. Every process starts through this instead of
 * awaiting `migrate`: a process started while PostgreSQL is away keeps running, says not-ready
 * through `probe`, and becomes ready by itself once PostgreSQL is back.
 *
 * Use: `const schema = migrateWhenReachable(pool, { log }); ... probes: { migrations: schema.probe }`
 * and `await schema.done` before the work that needs the schema.
 */
export function migrateWhenReachable(
  pool: pg.Pool,
  opts: { log?: (message: string) => void; firstDelayMs?: number; maxDelayMs?: number } = {},
): Migrations {
  const log = opts.log ?? ((m: string) => console.error(m));
  const first = opts.firstDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 10_000;
  let migrated = false;
  const stopping = new AbortController();
  let reason = 'migrations not applied yet';
  const done = (async () => {
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        const applied = await migrate(pool);
        migrated = true;
        log(
          `[postgres] schema up to date${applied.length ? ` (applied ${applied.join(', ')})` : ''}` +
            (attempt > 1 ? ` after ${attempt} attempts` : ''),
        );
        return;
      } catch (e) {
        const delay = backoffDelay(attempt, { firstMs: first, maxMs: max });
        reason = `migrations not applied yet: ${(e as Error).message}`;
        log(
          `[postgres] cannot migrate yet (attempt ${attempt}, retry in ${delay} ms): ${(e as Error).message}`,
        );
        await sleep(delay, stopping.signal);
      }
    }
    await new Promise<never>(() => undefined); // stopped: never resolves
  })();
  return {
    done,
    get migrated() {
      return migrated;
    },
    probe: () => (migrated ? Promise.resolve() : Promise.reject(new Error(reason))),
    stop() {
      stopping.abort();
    },
  };
}
