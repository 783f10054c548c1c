// `npm run schedules`: creates the batch layer's Temporal schedules, or updates them to the current
// definition (workflows/operations.ts ensureSchedules), then exits. `npm start` runs it before the
// app's processes, the compose file as a one-shot service; a test runs it with a private prefix.
import { config } from '../common/config.js';
import { createTemporalClient } from '../common/temporal.js';
import { ensureSchedules } from '../workflows/operations.js';

const client = await createTemporalClient();
try {
  const ids = await ensureSchedules(client, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    prefix: config.BATCH_SCHEDULE_PREFIX,
    lateEveryMinutes: config.LATE_PATH_EVERY_MINUTES,
  });
  console.log(`[schedules] ready on task queue ${config.TEMPORAL_TASK_QUEUE}: ${ids.join(', ')}`);
} catch (e) {
  console.error(`[schedules] could not create or update the schedules: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await client.connection.close();
}
