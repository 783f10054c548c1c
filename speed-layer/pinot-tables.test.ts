import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderPinotConfig, type PinotSchema } from '../common/pinot.js';
import {
  COUNT_ROWS_MARKER,
  FLUSH_ROWS_KEY,
  streamConfigsOf,
  tableConfigFor,
  tableFormat,
  tableTemplate,
  withKnobs,
} from './pinot-tables.js';

const DIR = resolve(import.meta.dirname, 'pinot');
const table = tableTemplate();
const schema = renderPinotConfig<PinotSchema>(
  resolve(DIR, 'minute_counts.schema.json'),
  new Proxy({}, { get: () => '' }) as Record<string, string>,
);

describe('tableFormat', () => {
  it('a table made from minute_counts.table.json takes several rows per message', () => {
    expect(tableFormat(table).manyRowsPerMessage).toBe(true);
  });

  it('maps every schema column from its field in `rows` (a column without one would be null in unnested rows)', () => {
    const columns = [
      ...(schema.dimensionFieldSpecs ?? []),
      ...(schema.metricFieldSpecs ?? []),
      ...(schema.dateTimeFieldSpecs ?? []),
    ].map((f) => f.name);
    const transforms = (
      table.ingestionConfig as { transformConfigs: Array<{ columnName: string; transformFunction: string }> }
    ).transformConfigs;
    expect(transforms.map((t) => t.columnName).sort()).toEqual([...columns].sort());
    for (const t of transforms) expect(t.transformFunction).toBe(`"rows.${t.columnName}"`);
  });

  it('a table made before (no unnest), or given the unnest without the marker, takes one row per message', () => {
    const { ingestionConfig: _, ...before } = table;
    expect(tableFormat({ ...before, metadata: {} }).manyRowsPerMessage).toBe(false);
    // The unnest alone is not enough: its consuming segments may predate it (docs/operations.md).
    expect(tableFormat({ ...table, metadata: {} }).manyRowsPerMessage).toBe(false);
    expect(tableFormat({ ...before, metadata: table.metadata }).manyRowsPerMessage).toBe(false);
    expect(tableFormat(undefined).manyRowsPerMessage).toBe(false);
    expect(COUNT_ROWS_MARKER.key).toBe('adclick.countRows');
  });
});

describe('the count form of a table', () => {
  const vars = new Proxy({}, { get: () => 'x' }) as Record<string, string>;

  it('a table made for deltas has no upsert (every row adds); one for cumulative rows keeps the FULL upsert', () => {
    const deltas = tableConfigFor('deltas', vars);
    expect(deltas.upsertConfig).toBeUndefined();
    expect(deltas.routing).toBeUndefined();
    expect(tableFormat(deltas)).toEqual({ manyRowsPerMessage: true, counts: 'deltas' });
    const cumulative = tableConfigFor('cumulative', vars);
    expect(cumulative.upsertConfig).toEqual({ mode: 'FULL', comparisonColumn: 'clicks' });
    expect(tableFormat(cumulative)).toEqual({ manyRowsPerMessage: true, counts: 'cumulative' });
    // Everything else is the same table.
    const { upsertConfig: _u, routing: _r, ...rest } = cumulative;
    expect(deltas).toEqual(rest);
  });

  it('an upsert table made before is cumulative; no table is never taken for deltas', () => {
    expect(tableFormat(table).counts).toBe('cumulative');
    expect(tableFormat(undefined).counts).toBe('cumulative');
  });

  it('reads upsert as Pinot does: a null config or mode NONE adds every row, any other mode upserts', () => {
    const deltas = tableConfigFor('deltas', vars);
    expect(tableFormat({ ...deltas, upsertConfig: null }).counts).toBe('deltas');
    expect(tableFormat({ ...deltas, upsertConfig: { mode: 'NONE' } }).counts).toBe('deltas');
    expect(tableFormat({ ...deltas, upsertConfig: { mode: 'none' } }).counts).toBe('deltas');
    expect(tableFormat({ ...deltas, upsertConfig: { mode: 'PARTIAL' } }).counts).toBe('cumulative');
    expect(tableFormat({ ...deltas, upsertConfig: { mode: 'FULL' } }).counts).toBe('cumulative');
  });
});

describe('withKnobs', () => {
  const made = tableConfigFor('deltas', {
    ...Object.fromEntries(['TABLE', 'TOPIC', 'BROKERS', 'CONSUMER_FACTORY'].map((k) => [k, k.toLowerCase()])),
    RETENTION_DAYS: '7',
    REPLICATION: '1',
    FETCH_MIN_BYTES: '1',
    FETCH_MAX_WAIT_MS: '500',
    CONSUMING_ROWS: '2000000',
  });
  const streams = (t: typeof made): Record<string, string> => streamConfigsOf(t)!;

  it('leaves a table made with the same knobs as it is', () => {
    expect(withKnobs(made, { consumingRows: '2000000', retentionDays: '7' })).toBeUndefined();
  });

  it("sets the consuming rows of a table sized by Pinot's autotune, and keeps every other key", () => {
    const autotune = {
      ...made,
      tableIndexConfig: {
        ...(made.tableIndexConfig as object),
        streamConfigs: {
          ...streams(made),
          [FLUSH_ROWS_KEY]: '0',
          'realtime.segment.flush.threshold.segment.size': '50M',
        },
      },
    };
    const knobs = withKnobs(autotune, { consumingRows: '2000000', retentionDays: '7' })!;
    expect(knobs.changes).toEqual({ [FLUSH_ROWS_KEY]: { from: '0', to: '2000000' } });
    expect(streams(knobs.table)).toEqual({ ...streams(autotune), [FLUSH_ROWS_KEY]: '2000000' });
    expect({ ...knobs.table, tableIndexConfig: autotune.tableIndexConfig }).toEqual(autotune);
  });

  it('sets the retention in days, whatever the unit the table had', () => {
    const hours = {
      ...made,
      segmentsConfig: {
        ...(made.segmentsConfig as object),
        retentionTimeValue: '48',
        retentionTimeUnit: 'HOURS',
      },
    };
    const knobs = withKnobs(hours, { consumingRows: '2000000', retentionDays: '2' })!;
    expect(knobs.changes).toEqual({ retention: { from: '48 HOURS', to: '2 DAYS' } });
    expect(knobs.table.segmentsConfig).toEqual({
      ...(made.segmentsConfig as object),
      retentionTimeValue: '2',
      retentionTimeUnit: 'DAYS',
    });
  });
});
