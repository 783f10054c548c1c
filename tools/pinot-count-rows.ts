// `npm run pinot:count-rows -- unnest|mark [--table <name>]`: brings a speed-layer Pinot table made
// before several count rows per message to them, in the order that loses no row
// (docs/operations.md, "Several count rows per message"):
//   1. unnest — the table's config gains the unnest of `rows` (its consuming segments still run the old one);
//   2. restart every Pinot server, one at a time (its consuming segments start again with the new config);
//   3. mark   — the table is marked as taking several rows per message;
//   4. restart the speed-layer processes: they send several rows per message from then on.
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { migrateCountRows, type CountRowsStep } from '../speed-layer/pinot-tables.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { table: { type: 'string', default: config.SPEED_PINOT_TABLE } },
});
const step = positionals[0];
if (step !== 'unnest' && step !== 'mark') {
  console.error('usage: npm run pinot:count-rows -- unnest|mark [--table <name>]');
  process.exit(2);
}
const table = values.table!;
try {
  const format = await migrateCountRows(step as CountRowsStep, table);
  if (step === 'unnest')
    console.log(
      `${table} unnests rows. Next: restart every Pinot server (one at a time), then \`npm run pinot:count-rows -- mark\`.`,
    );
  else
    console.log(
      `${table} takes ${format.manyRowsPerMessage ? 'several rows' : 'one row'} per message. Next: restart the speed-layer processes.`,
    );
} catch (e) {
  console.error(`[pinot:count-rows] ${(e as Error).message}`);
  process.exit(1);
}
