// The serving API's suite (serving-api.test.ts) with the final counts in Pinot (BATCH_STORE=pinot,
// docs/store.md): the same tests, a parameter, in `npm test`. Every suite that reads finals runs on
// both stores with `npm run test:stores`; this one is the CI's pick (docs/store.md "Tests on both stores").
// The environment is set before the suite imports common/config.ts, and restored for the files after.
import { afterAll, vi } from 'vitest';

vi.stubEnv('BATCH_STORE', 'pinot');
vi.stubEnv('BATCH_PINOT_TABLE', 'batch_counts_stores_test');
// The suite's days are in 2001–2010.
vi.stubEnv('BATCH_PINOT_RETENTION_DAYS', '36500');
afterAll(() => vi.unstubAllEnvs());

await import('./serving-api.test.js');
