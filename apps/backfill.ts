// `npm run backfill -- --from 2026-11-27T00:00:00Z --to 2026-11-27T06:00:00Z [--parallelism 2] [--wait]`
// Starts (or finds the running) backfill workflow of [from, to) and optionally follows its progress.
import { parseArgs } from 'node:util';
import { createTemporalClient } from '../common/temporal.js';
import type { BackfillProgress } from '../workflows/index.js';
import { startBackfill } from '../workflows/operations.js';

const { values } = parseArgs({
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    parallelism: { type: 'string' },
    wait: { type: 'boolean', default: false },
  },
});
if (!values.from || !values.to) {
  console.error(
    'usage: npm run backfill -- --from <ISO hour> --to <ISO hour, exclusive> [--parallelism N] [--wait]',
  );
  process.exit(2);
}

const client = await createTemporalClient();
try {
  const { workflowId } = await startBackfill(client, {
    from: values.from,
    to: values.to,
    parallelism: values.parallelism ? Number(values.parallelism) : undefined,
  });
  console.log(`backfill workflow ${workflowId} (see the Temporal UI, or --wait)`);
  if (values.wait) {
    const handle = client.workflow.getHandle(workflowId);
    const timer = setInterval(() => {
      handle.query<BackfillProgress>('progress').then(
        (p) => console.log(`  ${p.done}/${p.total} done, ${p.running} running, ${p.failed} failed`),
        () => undefined,
      );
    }, 5000);
    try {
      const result = (await handle.result()) as BackfillProgress;
      console.log(`done: ${result.done}/${result.total} hours, ${result.validClicks} valid clicks`);
    } finally {
      clearInterval(timer);
    }
  }
} catch (e) {
  console.error(`backfill failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await client.connection.close();
}
