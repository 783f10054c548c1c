// Pinot end to end on the local stack: a REALTIME table over a fresh Kafka topic sees a row produced
// with kafkajs, queried through the broker's SQL endpoint.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { clicksTopicSpec, createKafka, ensureTopics } from '../../common/kafka.js';
import {
  addSchema,
  addTable,
  deleteSchema,
  deleteTable,
  getSchema,
  kafkaConsumerFactory,
  query,
  rowObjects,
  tableExists,
  type PinotSchema,
  type PinotTableConfig,
} from '../../common/pinot.js';
import { waitFor } from '../../common/wait.js';

describe('Pinot smoke', () => {
  const id = randomBytes(6).toString('hex');
  const topic = `pinot-smoke-${id}`;
  const table = `pinot_smoke_${id}`;
  const kafka = createKafka('pinot-smoke');
  const admin = kafka.admin();

  afterAll(async () => {
    await deleteTable(table, 'REALTIME').catch(() => undefined);
    await deleteSchema(table).catch(() => undefined);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('a REALTIME table consumes a JSON row from Kafka and the broker returns it', async () => {
    await admin.connect();
    await ensureTopics(admin, [clicksTopicSpec({ topic, partitions: 2 })]);

    const schema: PinotSchema = {
      schemaName: table,
      dimensionFieldSpecs: [{ name: 'adId', dataType: 'STRING' }],
      metricFieldSpecs: [{ name: 'clicks', dataType: 'LONG' }],
      dateTimeFieldSpecs: [
        { name: 'minute', dataType: 'LONG', format: '1:MILLISECONDS:EPOCH', granularity: '1:MINUTES' },
      ],
    };
    await addSchema(schema);
    expect((await getSchema(table))?.schemaName).toBe(table);

    const tableConfig: PinotTableConfig = {
      tableName: table,
      tableType: 'REALTIME',
      segmentsConfig: {
        schemaName: table,
        timeColumnName: 'minute',
        timeType: 'MILLISECONDS',
        replication: '1',
        replicasPerPartition: '1',
        retentionTimeUnit: 'DAYS',
        retentionTimeValue: '1',
      },
      tenants: {},
      tableIndexConfig: {
        loadMode: 'MMAP',
        streamConfigs: {
          streamType: 'kafka',
          'stream.kafka.topic.name': topic,
          'stream.kafka.broker.list': config.KAFKA_BROKERS,
          'stream.kafka.consumer.type': 'lowlevel',
          'stream.kafka.consumer.factory.class.name': await kafkaConsumerFactory(),
          'stream.kafka.decoder.class.name': 'org.apache.pinot.plugin.stream.kafka.KafkaJSONMessageDecoder',
          'stream.kafka.consumer.prop.auto.offset.reset': 'smallest',
          'realtime.segment.flush.threshold.rows': '10000',
          'realtime.segment.flush.threshold.time': '1h',
        },
      },
      metadata: {},
    };
    await addTable(tableConfig);
    expect(await tableExists(table, 'REALTIME')).toBe(true);

    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const row = { adId: `ad-${id}`, clicks: 42, minute };
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: row.adId, value: JSON.stringify(row) }] });
    await producer.disconnect();

    const sql = `select adId, clicks, minute from ${table} where adId = '${row.adId}' limit 10`;
    // Until the consuming segments are online the broker reports the table as missing.
    const result = await waitFor(
      'the row to be visible in Pinot',
      async () => {
        const r = await query(sql);
        return r.rows.length > 0 && r;
      },
      60_000,
      500,
    );
    expect(rowObjects(result)).toEqual([{ adId: row.adId, clicks: 42, minute }]);

    const count = await query(`select count(*) from ${table}`);
    expect(count.rows[0]?.[0]).toBe(1);
  });
});
