// Several count rows per minute_counts message (speed-layer/kafka-sink.ts countMessages) on the real
// Pinot: a table made by ensurePinotTables unnests `{"rows":[…]}` into rows and still takes a message
// that is one row, so messages of both forms (a speed layer switching forms, or two versions during
// a rolling upgrade) land in one table, and a row sent again in the other form replaces its earlier
// value under the upsert. Every row counts once; none is indexed as a row of nulls.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clicksTopicSpec, createKafka, ensureTopics, minuteCountsTopicSpec } from '../../common/kafka.js';
import { getTableConfig, query, rowObjects, updateTable } from '../../common/pinot.js';
import { waitFor } from '../../common/wait.js';
import { countMessages } from '../../speed-layer/kafka-sink.js';
import type { CountChange } from '../../speed-layer/minute-window.js';
import {
  CountsMismatchError,
  dropPinotTable,
  FLUSH_ROWS_KEY,
  streamConfigsOf,
  ensurePinotTables,
  migrateCountRows,
  tableFormat,
} from '../../speed-layer/pinot-tables.js';

describe('minute_counts messages of one or several rows into one Pinot table', () => {
  const id = randomBytes(5).toString('hex');
  const clicksTopic = `rows-clicks-${id}`;
  const countsTopic = `rows-counts-${id}`;
  const deltasTopic = `rows-deltas-${id}`;
  const table = `rows_${id}`;
  const deltasTable = `rows_deltas_${id}`;
  const segmentTopic = `rows-segment-${id}`;
  const segmentTable = `rows_segment_${id}`;
  const kafka = createKafka('pinot-count-rows');
  const admin = kafka.admin();
  const producer = kafka.producer();

  beforeAll(async () => {
    await admin.connect();
    await ensureTopics(admin, [
      clicksTopicSpec({ topic: clicksTopic, partitions: 2 }),
      minuteCountsTopicSpec({ topic: countsTopic, clicksTopic, partitions: 2, counts: 'cumulative' }),
      minuteCountsTopicSpec({ topic: deltasTopic, clicksTopic, partitions: 2, counts: 'deltas' }),
      minuteCountsTopicSpec({ topic: segmentTopic, clicksTopic, partitions: 2, counts: 'deltas' }),
    ]);
    await producer.connect();
  });

  afterAll(async () => {
    await producer.disconnect();
    await dropPinotTable(table).catch(() => undefined);
    await dropPinotTable(deltasTable).catch(() => undefined);
    await dropPinotTable(segmentTable).catch(() => undefined);
    await admin
      .deleteTopics({ topics: [clicksTopic, countsTopic, deltasTopic, segmentTopic] })
      .catch(() => undefined);
    await admin.disconnect();
  });

  const minute = 1_765_000_000_000 - (1_765_000_000_000 % 60_000);
  const change = (ad: number, salt: number, clicks: number): CountChange => ({
    adId: String(ad),
    advertiserId: String(900 + (ad % 3)),
    salt,
    minute,
    part: 'e0',
    clicks,
    delta: clicks,
  });

  it('unnests many-row messages, keeps one-row messages, and upserts across the two forms', async () => {
    const format = await ensurePinotTables({ table, topic: countsTopic, counts: 'cumulative' });
    expect(format.manyRowsPerMessage).toBe(true);

    // Partition 0: ads 1–20 one row per message, then the same rows again, larger, 7 per message.
    const first = Array.from({ length: 20 }, (_, i) => change(1 + i, i % 4, 1 + i));
    const again = first.map((c) => ({ ...c, clicks: c.clicks + 100 }));
    // Partition 1: ads 21–60, 7 rows per message only (the last message part-full).
    const other = Array.from({ length: 40 }, (_, i) => change(21 + i, i % 4, 2));
    const now = Date.now();
    await producer.send({
      topic: countsTopic,
      acks: -1,
      messages: countMessages(0, first, now, 1, 10, 'cumulative'),
    });
    await producer.send({
      topic: countsTopic,
      acks: -1,
      messages: countMessages(1, other, now, 7, 10, 'cumulative'),
    });
    await producer.send({
      topic: countsTopic,
      acks: -1,
      messages: countMessages(0, again, now + 1, 7, 20, 'cumulative'),
    });

    const expected: Record<string, number> = {};
    for (const c of [...again, ...other]) expected[c.adId] = (expected[c.adId] ?? 0) + c.clicks;
    const sums = async (): Promise<Record<string, number>> => {
      const r = await query(
        `SELECT adId, SUM(clicks) AS clicks, COUNT(*) AS n FROM ${table} GROUP BY adId LIMIT 1000`,
      );
      return Object.fromEntries(rowObjects(r).map((row) => [String(row.adId), Number(row.clicks)]));
    };
    let seen: Record<string, number> = {};
    await waitFor(
      'Pinot to index every row',
      async () => {
        seen = await sums().catch(() => ({}));
        return JSON.stringify(sortKeys(seen)) === JSON.stringify(sortKeys(expected));
      },
      60_000,
    ).catch(() => undefined);
    expect(sortKeys(seen)).toEqual(sortKeys(expected));
    const rows = rowObjects(await query(`SELECT COUNT(*) AS n FROM ${table}`));
    expect(Number(rows[0]!.n)).toBe(first.length + other.length);
    const advertisers = rowObjects(
      await query(`SELECT advertiserId, COUNT(*) AS n FROM ${table} GROUP BY advertiserId LIMIT 10`),
    );
    expect(advertisers.map((a) => String(a.advertiserId)).sort()).toEqual(['900', '901', '902']);
  }, 120_000);

  it('a table made for deltas sums every row: the same part in two flushes adds up, in either message form', async () => {
    const format = await ensurePinotTables({ table: deltasTable, topic: deltasTopic, counts: 'deltas' });
    expect(format).toEqual({ manyRowsPerMessage: true, counts: 'deltas' });
    // Partition 0: ads 1–20, a first flush one row per message, a second flush (the same parts,
    // other deltas) 7 per message. Partition 1: ads 21–60 once.
    const first = Array.from({ length: 20 }, (_, i) => ({ ...change(1 + i, i % 4, 50), delta: 1 + i }));
    const second = first.map((c) => ({ ...c, clicks: 60, delta: 3 }));
    const other = Array.from({ length: 40 }, (_, i) => ({ ...change(21 + i, i % 4, 9), delta: 2 }));
    const now = Date.now();
    const send = (p: number, changes: CountChange[], at: number, n: number, next: number) =>
      producer.send({
        topic: deltasTopic,
        acks: -1,
        messages: countMessages(p, changes, at, n, next, 'deltas'),
      });
    await send(0, first, now, 1, 10);
    await send(1, other, now, 7, 10);
    await send(0, second, now + 1, 7, 20);

    const expected: Record<string, number> = {};
    for (const c of [...first, ...second, ...other]) expected[c.adId] = (expected[c.adId] ?? 0) + c.delta;
    let seen: Record<string, number> = {};
    await waitFor(
      'Pinot to index every delta',
      async () => {
        const r = await query(
          `SELECT adId, SUM(clicks) AS clicks FROM ${deltasTable} GROUP BY adId LIMIT 1000`,
        );
        seen = Object.fromEntries(rowObjects(r).map((row) => [String(row.adId), Number(row.clicks)]));
        return JSON.stringify(sortKeys(seen)) === JSON.stringify(sortKeys(expected));
      },
      60_000,
    ).catch(() => undefined);
    expect(sortKeys(seen)).toEqual(sortKeys(expected));
    const rows = rowObjects(await query(`SELECT COUNT(*) AS n FROM ${deltasTable}`));
    expect(Number(rows[0]!.n)).toBe(first.length + second.length + other.length);
  }, 120_000);

  it("a server's consuming segments hold SPEED_PINOT_CONSUMING_ROWS over its partitions: each partition commits at its share; every delta counts once", async () => {
    // realtime.segment.flush.threshold.rows is a key Pinot would ignore if misspelled (and it would
    // then size segments by bytes, towards 50 MB): this waits for commits that only the key makes.
    // The test stack runs one Pinot server, which consumes both partitions: 50 rows are 25 each.
    await ensurePinotTables({
      table: segmentTable,
      topic: segmentTopic,
      counts: 'deltas',
      consumingRows: 50,
    });
    const made = await getTableConfig(segmentTable);
    expect(streamConfigsOf(made)![FLUSH_ROWS_KEY]).toBe('50');
    const changes = Array.from({ length: 60 }, (_, i) => ({
      ...change(1 + i, i % 4, 1),
      delta: 1 + (i % 5),
    }));
    const now = Date.now();
    // Partition 0 only, 5 rows a message: 25 rows are five whole messages.
    for (let f = 0; f < 3; f++)
      await producer.send({
        topic: segmentTopic,
        acks: -1,
        messages: countMessages(0, changes.slice(f * 20, f * 20 + 20), now + f, 5, 10 * (f + 1), 'deltas'),
      });
    const expected = changes.reduce((sum, c) => sum + c.delta, 0);
    let total = 0;
    let perSegment = new Map<number, number>();
    await waitFor(
      "Pinot to commit partition 0's first two segments and index every delta",
      async () => {
        total = Number((await query(`SELECT SUM(clicks) FROM ${segmentTable}`)).rows[0]?.[0] ?? 0);
        const rows = rowObjects(
          await query(`SELECT $segmentName AS s, COUNT(*) AS n FROM ${segmentTable} GROUP BY $segmentName`),
        );
        // LLC segment names: table__partition__sequence__time.
        perSegment = new Map(
          rows
            .map((r) => ({ name: String(r.s).split('__'), n: Number(r.n) }))
            .filter(({ name }) => name[1] === '0')
            .map(({ name, n }) => [Number(name[2]), n]),
        );
        return total === expected && perSegment.size >= 3;
      },
      90_000,
    ).catch(() => undefined);
    expect(total).toBe(expected);
    // Segments 0 and 1 committed at the partition's share; the third holds the rest, consuming.
    expect([perSegment.get(0), perSegment.get(1), perSegment.get(2)]).toEqual([25, 25, 10]);
  }, 120_000);

  it('bounds the consuming rows of a table made before (sized by Pinot towards 50 MB), and sets its retention, when the speed layer starts', async () => {
    const before = `${deltasTable}_autotune`;
    await ensurePinotTables({ table: before, topic: deltasTopic, counts: 'deltas' });
    try {
      // Made as the tables before SPEED_PINOT_CONSUMING_ROWS were: rows 0, sized by bytes.
      const made = (await getTableConfig(before))!;
      const autotune = {
        ...streamConfigsOf(made)!,
        [FLUSH_ROWS_KEY]: '0',
        'realtime.segment.flush.threshold.segment.size': '50M',
        'realtime.segment.flush.autotune.initialRows': '100000',
      };
      await updateTable({
        ...made,
        tableIndexConfig: { ...(made.tableIndexConfig as object), streamConfigs: autotune },
      });
      expect(streamConfigsOf(await getTableConfig(before))![FLUSH_ROWS_KEY]).toBe('0');

      const told: string[] = [];
      const start = (retentionDays?: number) =>
        ensurePinotTables({
          table: before,
          topic: deltasTopic,
          counts: 'deltas',
          consumingRows: 1000,
          retentionDays,
          log: (m) => told.push(m),
        });
      await start();
      const bounded = streamConfigsOf(await getTableConfig(before))!;
      expect(bounded[FLUSH_ROWS_KEY]).toBe('1000');
      // Nothing else of the stream config changed.
      expect({ ...bounded, [FLUSH_ROWS_KEY]: '0' }).toEqual(autotune);
      expect(told).toEqual([expect.stringContaining(`${FLUSH_ROWS_KEY} 0 -> 1000`)]);
      // So is its retention (SPEED_PINOT_RETENTION_DAYS), as the count topic's is.
      await start(2);
      const segmentsConfig = (await getTableConfig(before))!.segmentsConfig as Record<string, unknown>;
      expect([segmentsConfig.retentionTimeValue, segmentsConfig.retentionTimeUnit]).toEqual(['2', 'DAYS']);
      expect(told[1]).toContain('retention 7 DAYS -> 2 DAYS');
      // Once set, a start changes nothing and says nothing.
      await start(2);
      expect(told).toHaveLength(2);
    } finally {
      await dropPinotTable(before).catch(() => undefined);
    }
  }, 60_000);

  it('refuses a table of the other form: deltas read by an upsert (or the reverse) would be wrong counts', async () => {
    await ensurePinotTables({ table, topic: countsTopic, counts: 'cumulative' });
    await ensurePinotTables({ table: deltasTable, topic: deltasTopic, counts: 'deltas' });
    await expect(ensurePinotTables({ table, topic: countsTopic, counts: 'deltas' })).rejects.toThrow(
      CountsMismatchError,
    );
    await expect(
      ensurePinotTables({ table: deltasTable, topic: deltasTopic, counts: 'cumulative' }),
    ).rejects.toThrow(/takes deltas count rows, but the speed layer writes cumulative/);
  }, 60_000);

  it('migrates a table made before in two steps: unnest (still one row per message), then mark', async () => {
    const before = `${table}_before`;
    await ensurePinotTables({ table: before, topic: countsTopic, counts: 'cumulative' });
    try {
      // Made as the tables before several rows per message were: no unnest, no marker.
      const made = (await getTableConfig(before))!;
      const { ingestionConfig: _, ...old } = made;
      await updateTable({ ...old, metadata: {} });
      expect(tableFormat(await getTableConfig(before)).manyRowsPerMessage).toBe(false);
      await expect(migrateCountRows('mark', before)).rejects.toThrow(/does not unnest rows yet/);
      // Its consuming segments run the old config until the servers restart: still one row per message.
      expect((await migrateCountRows('unnest', before)).manyRowsPerMessage).toBe(false);
      expect((await getTableConfig(before))!.ingestionConfig).toEqual(made.ingestionConfig);
      expect((await migrateCountRows('mark', before)).manyRowsPerMessage).toBe(true);
      // Both steps again change nothing.
      expect((await migrateCountRows('unnest', before)).manyRowsPerMessage).toBe(true);
      expect((await getTableConfig(before))!.metadata).toEqual(made.metadata);
    } finally {
      await dropPinotTable(before).catch(() => undefined);
    }
  }, 60_000);
});

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
