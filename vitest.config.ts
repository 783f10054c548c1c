// Two projects: `unit` (pure logic, no I/O, milliseconds) and `integration` (real services from
// `npm run stack:up`). Integration files run one at a time: they share one Kafka, one Pinot, one
// Temporal, and a 2-core machine.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The JSON report lets .ci/run print a plain "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-artifacts/vitest-results.json' },
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            '{apps,common,ingest,catalogue,speed-layer,batch-layer,serving-layer,workflows,activities,stack,tools,bench}/**/*.test.ts',
            'packages/*/src/**/*.test.ts',
          ],
        },
      },
      {
        test: {
          name: 'integration',
          // The fault matrix's CI subset (fault-matrix.test.ts) is one of them: it kills and stops
          // this stack's PostgreSQL and Kafka, and restarts them before it ends.
          include: ['test/integration/**/*.test.ts'],
          exclude: [
            // Tests that need the local cluster (several Kafka brokers): `npm run test:cluster`.
            ...(process.env.ADCLICK_CLUSTER ? [] : ['test/integration/cluster-*.test.ts']),
          ],
          // Every test runs from 127.0.0.1: the 401s some tests provoke on purpose must not add up,
          // in the one production bucket of failed authentications, to a lockout of later tests.
          // The rate limits themselves are tested with explicit limits of their own (security.test.ts).
          env: { ADCLICK_RATE_LIMIT_AUTH_FAILURES: '1000000' },
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
