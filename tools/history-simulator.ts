// `npm run simulate:history -- --from 2026-11-20T00:00:00Z --hours 3 --impressions 100000 --truth truth.json`
// Produces click events with past timestamps straight to the clicks topic, as replayed late events
// would arrive, and writes the ground truth (valid first clicks per ad and minute) to a JSON file.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Producer } from 'kafkajs';
import { clickKey, encodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { config } from '../common/config.js';
import { clicksTopicSpec, createKafka, ensureTopics } from '../common/kafka.js';
import { parseHour } from '../common/time.js';
import { generateHistory, type History } from './history.js';

/** Sends events in order, in acks=all batches. */
export async function produceHistory(
  producer: Producer,
  topic: string,
  events: readonly ClickEvent[],
): Promise<void> {
  for (let i = 0; i < events.length; i += 2000) {
    await producer.send({
      topic,
      acks: -1,
      messages: events
        .slice(i, i + 2000)
        .map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
    });
  }
}

export function truthJson(h: History, from: number, hours: number): string {
  const adMinutes = [...h.truth].map(([k, clicks]) => {
    const [adId, minute] = k.split('|');
    return { adId: adId!, minute: new Date(Number(minute)).toISOString(), clicks };
  });
  return JSON.stringify(
    { from: new Date(from).toISOString(), hours, counted: h.counted, adMinutes },
    null,
    1,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      hours: { type: 'string', default: '1' },
      impressions: { type: 'string', default: '10000' },
      ads: { type: 'string', default: '100' },
      'ad-base': { type: 'string', default: '1000' },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      topic: { type: 'string', default: config.KAFKA_CLICKS_TOPIC },
      truth: { type: 'string', default: 'history-truth.json' },
    },
  });
  if (!values.from) throw new Error('--from <ISO hour> is required');
  const from = parseHour(values.from);
  const hours = Number(values.hours);
  const history = generateHistory({
    from,
    hours,
    impressions: Number(values.impressions),
    ads: Number(values.ads),
    adBase: BigInt(values['ad-base']),
    seed: Number(values.seed),
    salts: config.ADCLICK_KEY_SALTS,
  });
  const kafka = createKafka('history-simulator');
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [clicksTopicSpec({ topic: values.topic })]);
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  await produceHistory(producer, values.topic, history.events);
  await producer.disconnect();
  await writeFile(values.truth, truthJson(history, from, hours));
  console.log(
    `produced ${history.events.length} events (${history.counted} counted impressions) to ${values.topic}; truth in ${values.truth}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
