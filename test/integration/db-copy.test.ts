// COPY … TO STDOUT through common/db.ts copyOut on the real PostgreSQL: pg arms a read deadline for
// every query and clears it from the query's callback, which pg-copy-streams' COPY TO never calls.
// A finished copy must leave no timer behind (it kept tools alive for the batch pool's 30 minutes)
// and no late "Query read timeout" on its stream; a copy still running keeps its deadline.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyOut, createPool } from '../../common/db.js';
import { sleep } from '../../common/wait.js';

describe('copyOut', () => {
  // A pool whose client-side deadline is 1.5 s (statement 0.5 s + 1 s).
  let pool: pg.Pool;
  beforeAll(() => {
    pool = createPool(1, { statementTimeoutMs: 500 });
  });
  afterAll(async () => {
    await pool.end();
  });

  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('leaves no deadline armed and no late error once the copy has ended', async () => {
    const client = await pool.connect();
    const late: string[] = [];
    const before = timers();
    let text = '';
    try {
      const stream = copyOut(client, 'copy (select g from generate_series(1, 5000) g) to stdout');
      for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString('utf8');
      stream.on('error', (e: Error) => late.push(e.message));
      // Before the release (the pool arms its idle timer then).
      expect(timers()).toBe(before);
    } finally {
      client.release();
    }
    expect(text.split('\n').filter(Boolean)).toHaveLength(5000);
    // Past the 1.5 s deadline: nothing fires on the finished copy.
    await sleep(2000);
    expect(late).toEqual([]);
  });

  it('keeps the deadline while the copy runs: a server that sends nothing ends it', async () => {
    const client = await pool.connect();
    try {
      // The statement deadline of the session is lifted, so only the client-side one can end it.
      await client.query('set statement_timeout = 0');
      const stream = copyOut(client, 'copy (select pg_sleep(5)) to stdout', 1000);
      const started = Date.now();
      await expect(
        (async () => {
          for await (const _ of stream as AsyncIterable<Buffer>);
        })(),
      ).rejects.toThrow(/Query read timeout/);
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      client.release(true);
    }
  });
});
