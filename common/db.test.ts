// Which PostgreSQL errors mean "unavailable, retry later" (503) and which are the statement's own (no I/O).
import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from './db.js';

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it('is true for a server that is away, restarting, hung or past the statement deadline', () => {
    for (const e of [
      withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Query read timeout'),
      withCode('terminating connection due to administrator command', '57P01'),
      withCode('the database system is starting up', '57P03'),
      withCode('canceling statement due to statement timeout', '57014'),
      withCode('connection failure', '08006'),
    ])
      expect(isDatabaseUnavailable(e), e.message).toBe(true);
  });

  it('is false for errors of the statement or the data, and for non-errors', () => {
    for (const e of [
      withCode('duplicate key value violates unique constraint "ads_pkey"', '23505'),
      withCode('syntax error at or near "selct"', '42601'),
      withCode('relation "nope" does not exist', '42P01'),
      new Error('no such ad'),
      'ECONNREFUSED',
      undefined,
    ])
      expect(isDatabaseUnavailable(e), String(e)).toBe(false);
  });
});
