// What a killed benchmark or drill leaves behind on the local stack: its private Pinot table keeps
// consuming its private topics for good (Pinot polls every partition of every table), and its
// metrics make every scrape longer. On 5 December two such tables, from a bench and a fault matrix
// killed hours before, were still consuming during the next benchmarks. The runs that make them
// sweep them at their start: a private name carries its run's start time, and a table or topic of a
// run that started more than MAX_RUN_MS ago (longer than any run) is dropped. Names without a
// readable time (the fault matrix's before 5 December) read as long ago.
import { dropPinotTable } from '../speed-layer/pinot-tables.js';
import { listTables } from '../common/pinot.js';
import { createKafka } from '../common/kafka.js';

/** Longer than any one bench or drill run (the whole fault matrix takes about 20 minutes). */
export const MAX_RUN_MS = 3 * 3600_000;

/** A run id that starts with its start time (base36 ms), so a later sweep can tell its age. */
export const runId = (suffix = ''): string => `${Date.now().toString(36)}${suffix}`;

/** The start time a private name's run id carries (ms since the epoch; NaN when it has none). */
export function runStartOf(name: string, prefix: string): number {
  if (!name.startsWith(prefix)) return NaN;
  const id = /^[a-z0-9]{8}/i.exec(name.slice(prefix.length));
  return id ? parseInt(id[0], 36) : 0;
}

export interface Leftovers {
  /** Pinot table name prefixes of private tables (e.g. `bench_`). */
  tablePrefixes: string[];
  /** Kafka topic name prefixes of private topics (e.g. `bench-clicks-`). */
  topicPrefixes: string[];
}

/** Names (among `names`) whose run started more than MAX_RUN_MS before `now`. */
export function stale(names: string[], prefixes: string[], now = Date.now()): string[] {
  return names.filter((n) =>
    prefixes.some((p) => {
      const start = runStartOf(n, p);
      return !Number.isNaN(start) && now - start > MAX_RUN_MS;
    }),
  );
}

/** The private tables and topics of the system bench and the fault matrix (each sweeps both). */
export const PRIVATE_RESOURCES: Leftovers = {
  tablePrefixes: ['bench_', 'fault_matrix_'],
  topicPrefixes: ['bench-clicks-', 'bench-minute-counts-', 'matrix-clicks-', 'matrix-minute-counts-'],
};

/** Drops stale private tables and topics; returns what it dropped. Failures are reported, not thrown. */
export async function sweepLeftovers(
  what: Leftovers,
  log: (message: string) => void = (m) => console.log(m),
): Promise<{ tables: string[]; topics: string[] }> {
  const tables = stale(await listTables().catch(() => []), what.tablePrefixes);
  for (const t of tables)
    await dropPinotTable(t).catch((e: Error) => log(`[leftovers] table ${t}: ${e.message}`));
  const admin = createKafka('leftovers', { quiet: true }).admin();
  let topics: string[] = [];
  try {
    await admin.connect();
    topics = stale(await admin.listTopics(), what.topicPrefixes);
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } catch (e) {
    log(`[leftovers] topics: ${(e as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (tables.length + topics.length > 0)
    log(
      `[leftovers] dropped what killed runs left: tables ${tables.join(', ') || '-'}; topics ${topics.join(', ') || '-'}`,
    );
  return { tables, topics };
}
