// The published contract holds: Schemathesis (PyPI, pinned in stack/ensure-schemathesis.ts, installed
// on first use) generates requests from /openapi.json and runs every check against the real app (the
// click process in front of the API process, as `npm start` runs them, on the real PostgreSQL, Redis
// and Kafka), once with an advertiser key and once with the admin key, rate limits raised for the run.
// POST /v1/admin/backfills is left out until it refuses ranges past the raw data's cutoff (it would
// start real backfill workflows on the shared Temporal). The admin run also leaves out the routes
// that change a resource named by its id (PATCH /v1/ads/{adId}, archive, revoking an impression
// key): with the admin key, generated ids would reach other tests' ads and keys on a shared
// database. The advertiser run covers the first two on its own ads (others' are a 404).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { ensureSchemathesis } from '../../stack/ensure-schemathesis.js';
import { clickTopic, createAdvertiserWithAds, startLocalSystem, type LocalSystem } from '../support/click.js';

const RAISED = { advertiser: 1_000_000, admin: 1_000_000, minter: 1_000_000, authFailures: 1_000_000 };
/** Test cases per operation and phase: enough to reach every rule, small enough for CI's 2 minutes. */
const MAX_EXAMPLES = Number(process.env.ADCLICK_CONTRACT_EXAMPLES ?? 25);

interface Run {
  code: number;
  output: string;
  seconds: number;
}

const ADMIN_EXCLUDED = [
  ['--exclude-name', 'PATCH /v1/ads/{adId}'],
  ['--exclude-name', 'POST /v1/ads/{adId}/archive'],
  ['--exclude-name', 'POST /v1/admin/impression-keys/{keyId}/revoke'],
].flat();

function schemathesis(
  cli: string,
  baseUrl: string,
  key: string,
  name: string,
  exclude: string[] = [],
): Promise<Run> {
  const reports = resolve('test-artifacts', `contract-${name}`);
  mkdirSync(reports, { recursive: true });
  const args = [
    '--config-file',
    resolve('test/integration/fixtures/schemathesis.toml'),
    'run',
    `${baseUrl}/openapi.json`,
    '--url',
    baseUrl,
    '--checks',
    'all',
    '--header',
    `Authorization: Bearer ${key}`,
    '--exclude-name',
    'POST /v1/admin/backfills',
    ...exclude,
    '--max-examples',
    String(MAX_EXAMPLES),
    // One worker: with two, Schemathesis' threads parse source concurrently, and the Python 3.11.7
    // of this machine's pyenv failed a CI run inside its own AST constructor (SystemError: "AST
    // constructor recursion depth mismatch", with a KeyError from linecache), no request at fault.
    '--workers',
    '1',
    '--generation-database',
    'none',
    '--seed',
    '25',
    '--max-redirects',
    '0',
    '--request-timeout',
    '10',
    '--no-color',
    '--suppress-health-check',
    'all',
    '--report',
    'junit',
    '--report-dir',
    reports,
  ];
  const started = Date.now();
  return new Promise((done) => {
    execFile(
      cli,
      args,
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, SCHEMATHESIS_HOOKS: '' }, timeout: 150_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        done({ code, output: `${stdout}${stderr}`, seconds: (Date.now() - started) / 1000 });
      },
    );
  });
}

describe('the OpenAPI document is the contract (Schemathesis, every check)', () => {
  const pool = createPool(4);
  const kafka = createKafka('contract-test');
  const topic = `clicks-test-${randomUUID()}`;
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let sys: LocalSystem;
  let cli: string;
  let advertiserKey: string;

  beforeAll(async () => {
    cli = await ensureSchemathesis();
    await migrate(pool);
    topicIo = await clickTopic(kafka, topic);
    advertiserKey = (await createAdvertiserWithAds(pool, 3)).apiKey;
    sys = await startLocalSystem({
      topic,
      kafka,
      pool,
      api: { rateLimitPrefix: `rl-contract-${randomUUID()}:`, rateLimits: RAISED },
    });
  }, 300_000);
  afterAll(async () => {
    await sys?.close();
    await topicIo?.drop();
    await pool.end();
  });

  for (const who of ['advertiser', 'admin'] as const)
    it(`0 failures with the ${who} key`, { timeout: 180_000 }, async () => {
      const key = who === 'admin' ? config.ADCLICK_ADMIN_KEY : advertiserKey;
      const run = await schemathesis(cli, sys.url, key, who, who === 'admin' ? ADMIN_EXCLUDED : []);
      console.log(`[contract] ${who}: exit ${run.code} after ${run.seconds.toFixed(1)} s`);
      expect(run.code, run.output.slice(-20_000)).toBe(0);
      // The filters left out what they should and no more: of the operations Schemathesis loaded,
      // all but the backfill (both runs) and, for the admin, the ones ADMIN_EXCLUDED names.
      const ops = /Operations:\s+(\d+) selected \/ (\d+) total/.exec(run.output);
      expect(ops, 'the run names its operations').not.toBeNull();
      const [selected, total] = [Number(ops![1]), Number(ops![2])];
      expect(total).toBeGreaterThanOrEqual(24);
      expect(selected).toBe(total - 1 - (who === 'admin' ? ADMIN_EXCLUDED.length / 2 : 0));
    });
});
