// The one builder of how this host's spools reach Kafka, from the configuration: shared by each
// worker's own click log (apps/click-service.ts), the click logs worker 0 opens on orphan spools
// (apps/click.ts) and `npm run spool:drain` (apps/spool-drain.ts), so that their settings cannot
// drift apart again (the orphans' click logs once lacked the lanes and the compression).
import type { Kafka } from 'kafkajs';
import { config, kafkaBrokers } from '../common/config.js';
import type { ClickLogOptions, SpoolSendOptions } from '../ingest/click-log.js';
import { platformaticLanes, type LaneProducerFactory } from '../ingest/lane-producers.js';
import { clickMetrics } from '../ingest/metrics.js';

/** How a spool's click events reach Kafka, from the configuration: the topic, compression, metrics. */
export function spoolSendOptions(kafka: Kafka, overrides: Partial<SpoolSendOptions> = {}): SpoolSendOptions {
  return {
    kafka,
    topic: config.KAFKA_CLICKS_TOPIC,
    compression: config.ADCLICK_PRODUCE_COMPRESSION,
    metrics: clickMetrics(),
    ...given(overrides),
  };
}

/** A click log's options: the send settings above, and the ADCLICK_PRODUCE_* batching settings. */
export function clickLogOptions(
  kafka: Kafka,
  spoolPath: string,
  overrides: Partial<ClickLogOptions> = {},
): ClickLogOptions {
  return {
    ...spoolSendOptions(kafka),
    spoolPath,
    deadlineMs: config.ADCLICK_PRODUCE_DEADLINE_MS,
    lingerMs: config.ADCLICK_PRODUCE_LINGER_MS,
    batchMax: config.ADCLICK_PRODUCE_BATCH_MAX,
    encoding: config.ADCLICK_CLICK_EVENT_ENCODING,
    lanes: config.ADCLICK_PRODUCE_LANES,
    laneProducers: laneProducers(spoolPath),
    ...given(overrides),
  };
}

/** The lanes' producers as ADCLICK_KAFKA_PRODUCER says; undefined: kafkajs' (the click log's own when given none). */
function laneProducers(spoolPath: string): LaneProducerFactory | undefined {
  if (config.ADCLICK_KAFKA_PRODUCER !== 'platformatic') return undefined;
  return platformaticLanes({
    clientId: `adclick-ingest-${process.pid}`,
    brokers: kafkaBrokers(),
    metadataMaxAgeMs: config.KAFKA_METADATA_MAX_AGE_MS,
    log: (m) => console.error(`[click-log] ${spoolPath}: ${m}`),
  });
}

/** `o` without its undefined entries, so that an option not given keeps the configuration's value. */
function given<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
