// Small typed calls to Pinot's REST APIs (controller: schemas and tables; broker: SQL), undici's request().
// Pinot 0.11 answers a failed query with HTTP 200 and an `exceptions` list (newer releases honour the
// `Pinot-Use-Http-Status-For-Errors` header and answer 4xx/5xx); `query` handles both and throws.
import { readFileSync } from 'node:fs';
import { request, type Dispatcher } from 'undici';
import { config } from './config.js';

export interface PinotEndpoints {
  controllerUrl?: string;
  brokerUrl?: string;
  /** Per request; default 30 s for the controller, 10 s for queries. */
  timeoutMs?: number;
}

export type PinotDataType =
  'INT' | 'LONG' | 'FLOAT' | 'DOUBLE' | 'BOOLEAN' | 'TIMESTAMP' | 'STRING' | 'JSON' | 'BYTES';

export interface PinotFieldSpec {
  name: string;
  dataType: PinotDataType;
  singleValueField?: boolean;
  defaultNullValue?: string | number;
}

export interface PinotDateTimeFieldSpec extends PinotFieldSpec {
  /** e.g. `1:MILLISECONDS:EPOCH` */
  format: string;
  /** e.g. `1:MINUTES` */
  granularity: string;
}

export interface PinotSchema {
  schemaName: string;
  dimensionFieldSpecs?: PinotFieldSpec[];
  metricFieldSpecs?: PinotFieldSpec[];
  dateTimeFieldSpecs?: PinotDateTimeFieldSpec[];
  primaryKeyColumns?: string[];
}

export type PinotTableType = 'REALTIME' | 'OFFLINE';

/** The fields every table config has; the rest (indexes, stream, upsert, routing) pass through. */
export interface PinotTableConfig {
  tableName: string;
  tableType: PinotTableType;
  segmentsConfig: { schemaName?: string; timeColumnName?: string; replication?: string } & Record<
    string,
    unknown
  >;
  tableIndexConfig: Record<string, unknown>;
  /** Both required by Pinot 0.11's controller; `{}` means the default tenants and no custom metadata. */
  tenants: Record<string, unknown>;
  metadata: Record<string, unknown>;
  [section: string]: unknown;
}

export type PinotCell = string | number | boolean | null | Array<string | number | boolean>;

export interface PinotQueryResult {
  columns: string[];
  types: string[];
  rows: PinotCell[][];
  /** Rows the query scanned after filtering, as the broker reports it. */
  numDocsScanned: number;
  totalDocs: number;
  timeUsedMs: number;
  /** Segments the query read, and how many of them were still consuming (not committed yet). */
  numSegmentsQueried?: number;
  numConsumingSegmentsQueried?: number;
  /**
   * A server kept only `numGroupsLimit` groups: a group-by answer is truncated. `query` fails on it
   * unless the caller takes it (`allowTruncatedGroups`) and narrows the query itself.
   */
  numGroupsLimitReached: boolean;
}

interface BrokerResponse {
  resultTable?: { dataSchema: { columnNames: string[]; columnDataTypes: string[] }; rows: PinotCell[][] };
  exceptions?: Array<{ errorCode?: number; message?: string }>;
  numDocsScanned?: number;
  totalDocs?: number;
  timeUsedMs?: number;
  numSegmentsQueried?: number;
  numConsumingSegmentsQueried?: number;
  numGroupsLimitReached?: boolean;
}

/**
 * Pinot 0.11 targets Java 11; on Java 17 its reflection into the JDK (memory-mapped buffers, netty,
 * Helix) needs these packages opened: the flags of every Pinot JVM (the stack's, the batch layer's
 * segment ingestion jobs).
 */
export const pinotJavaOpens: readonly string[] = [
  'java.base/java.lang',
  'java.base/java.lang.reflect',
  'java.base/java.io',
  'java.base/java.nio',
  'java.base/java.util',
  'java.base/java.util.concurrent',
  'java.base/sun.nio.ch',
  'java.base/jdk.internal.misc',
  'java.base/jdk.internal.ref',
].map((p) => `--add-opens=${p}=ALL-UNNAMED`);

export class PinotError extends Error {
  constructor(
    message: string,
    /** HTTP status, or Pinot's error code for an exception reported inside a 200 answer. */
    readonly status: number,
  ) {
    super(message);
    this.name = 'PinotError';
  }
}

async function call(
  base: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  // undici's request(), not fetch(): the same client under Node's fetch without the WHATWG streams
  // and Response objects around it: 9-10 -> 7 ms of the API's CPU per metrics query (README, issue 29).
  const res = await request(`${base.replace(/\/$/, '')}${path}`, {
    method: method as Dispatcher.HttpMethod,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

async function controller(
  method: string,
  path: string,
  body: unknown,
  opts: PinotEndpoints,
  okStatuses: number[] = [],
): Promise<{ status: number; text: string }> {
  const res = await call(
    opts.controllerUrl ?? config.PINOT_CONTROLLER_URL,
    method,
    path,
    body,
    opts.timeoutMs ?? 30_000,
  );
  if ((res.status < 200 || res.status >= 300) && !okStatuses.includes(res.status)) {
    throw new PinotError(
      `Pinot controller ${method} ${path}: ${res.status} ${res.text.slice(0, 500)}`,
      res.status,
    );
  }
  return res;
}

/** A schema or table config from a JSON file whose `${NAME}` placeholders are filled from `vars`. */
export function renderPinotConfig<T>(path: string, vars: Record<string, string>): T {
  const text = readFileSync(path, 'utf8').replace(/\$\{(\w+)\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`${path}: no value for \${${name}}`);
    return value;
  });
  return JSON.parse(text) as T;
}

/** Adds or replaces a schema (the controller's `override=true`). */
export async function addSchema(schema: PinotSchema, opts: PinotEndpoints = {}): Promise<void> {
  await controller('POST', '/schemas?override=true', schema, opts);
}

/** The schema, or undefined when there is none by that name. */
export async function getSchema(name: string, opts: PinotEndpoints = {}): Promise<PinotSchema | undefined> {
  const res = await controller('GET', `/schemas/${encodeURIComponent(name)}`, undefined, opts, [404]);
  return res.status === 404 ? undefined : (JSON.parse(res.text) as PinotSchema);
}

/** Deletes a schema; a missing one is not an error. Delete its tables first. */
export async function deleteSchema(name: string, opts: PinotEndpoints = {}): Promise<void> {
  await controller('DELETE', `/schemas/${encodeURIComponent(name)}`, undefined, opts, [404]);
}

/** Creates a table. For REALTIME, the schema and the Kafka topic must exist first. */
export async function addTable(table: PinotTableConfig, opts: PinotEndpoints = {}): Promise<void> {
  await controller('POST', '/tables', table, opts);
}

/** The names of every table (raw names, without a _REALTIME or _OFFLINE suffix). */
export async function listTables(opts: PinotEndpoints = {}): Promise<string[]> {
  const res = await controller('GET', '/tables', undefined, opts);
  return (JSON.parse(res.text) as { tables?: string[] }).tables ?? [];
}

/** Whether a table of that name and type exists. */
export async function tableExists(
  name: string,
  type: PinotTableType = 'REALTIME',
  opts: PinotEndpoints = {},
): Promise<boolean> {
  return (await getTableConfig(name, type, opts)) !== undefined;
}

/** Replaces a table's config (the controller's PUT /tables/{name}). */
export async function updateTable(table: PinotTableConfig, opts: PinotEndpoints = {}): Promise<void> {
  await controller('PUT', `/tables/${encodeURIComponent(table.tableName)}`, table, opts);
}

/** A table's config as the controller holds it; undefined when there is no such table. */
export async function getTableConfig(
  name: string,
  type: PinotTableType = 'REALTIME',
  opts: PinotEndpoints = {},
): Promise<PinotTableConfig | undefined> {
  const res = await controller(
    'GET',
    `/tables/${encodeURIComponent(name)}?type=${type.toLowerCase()}`,
    undefined,
    opts,
    [404],
  );
  if (res.status === 404) return undefined;
  // Pinot answers `{}` (200) for a name without a table of that type.
  return (JSON.parse(res.text) as Partial<Record<PinotTableType, PinotTableConfig>>)[type];
}

/** Deletes a table with its segments; a missing one is not an error. */
export async function deleteTable(
  name: string,
  type: PinotTableType = 'REALTIME',
  opts: PinotEndpoints = {},
): Promise<void> {
  await controller(
    'DELETE',
    `/tables/${encodeURIComponent(name)}?type=${type.toLowerCase()}`,
    undefined,
    opts,
    [404],
  );
}

/** Deletes one segment of a table; a missing one is not an error. */
export async function deleteSegment(
  table: string,
  segment: string,
  type: PinotTableType,
  opts: PinotEndpoints = {},
): Promise<void> {
  await controller(
    'DELETE',
    `/segments/${encodeURIComponent(table)}/${encodeURIComponent(segment)}?type=${type.toLowerCase()}`,
    undefined,
    opts,
    [404],
  );
}

/** Bytes of a table's segments as its servers hold them on disk (the controller's size report). */
export async function tableSizeBytes(table: string, opts: PinotEndpoints = {}): Promise<number> {
  const res = await controller('GET', `/tables/${encodeURIComponent(table)}/size`, undefined, opts);
  return (JSON.parse(res.text) as { reportedSizeInBytes: number }).reportedSizeInBytes;
}

/**
 * Runs SQL on the broker. Pinot has no bind parameters: inline only values you have validated.
 * Throws PinotError when the broker reports an exception (including servers that did not answer).
 */
export async function query(
  sql: string,
  opts: PinotEndpoints & {
    queryOptions?: Record<string, string | number | boolean>;
    allowTruncatedGroups?: boolean;
  } = {},
): Promise<PinotQueryResult> {
  const queryOptions = Object.entries(opts.queryOptions ?? {})
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(';');
  const res = await call(
    opts.brokerUrl ?? config.PINOT_BROKER_URL,
    'POST',
    '/query/sql',
    queryOptions ? { sql, queryOptions } : { sql },
    opts.timeoutMs ?? 10_000,
    { 'Pinot-Use-Http-Status-For-Errors': 'true' },
  );
  if (res.status < 200 || res.status >= 300) {
    throw new PinotError(`Pinot broker: ${res.status} ${res.text.slice(0, 500)}`, res.status);
  }
  const body = JSON.parse(res.text) as BrokerResponse;
  const problem = body.exceptions?.[0];
  if (problem) {
    const messages = body.exceptions!.map((e) => e.message ?? `error ${e.errorCode ?? '?'}`).join('; ');
    throw new PinotError(`Pinot query failed: ${messages.slice(0, 500)}`, problem.errorCode ?? 500);
  }
  const numGroupsLimitReached = body.numGroupsLimitReached === true;
  if (numGroupsLimitReached && !opts.allowTruncatedGroups)
    throw new PinotError(
      'Pinot query hit its group limit (numGroupsLimit): the answer would be truncated',
      500,
    );
  return {
    numGroupsLimitReached,
    columns: body.resultTable?.dataSchema.columnNames ?? [],
    types: body.resultTable?.dataSchema.columnDataTypes ?? [],
    rows: body.resultTable?.rows ?? [],
    numDocsScanned: body.numDocsScanned ?? 0,
    totalDocs: body.totalDocs ?? 0,
    timeUsedMs: body.timeUsedMs ?? 0,
    numSegmentsQueried: body.numSegmentsQueried ?? 0,
    numConsumingSegmentsQueried: body.numConsumingSegmentsQueried ?? 0,
  };
}

/** Query rows as objects keyed by column name. */
export function rowObjects(result: PinotQueryResult): Array<Record<string, PinotCell>> {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i] ?? null])));
}

/** The Kafka consumer factory class the running Pinot ships: kafka20 on 0.x, kafka30 on 1.x. */
export async function kafkaConsumerFactory(opts: PinotEndpoints = {}): Promise<string> {
  const res = await controller('GET', '/version', undefined, opts, [404]);
  const versions = res.status === 404 ? {} : (JSON.parse(res.text) as Record<string, string>);
  const version = Object.values(versions).find((v) => /^\d+\.\d+/.test(v)) ?? '1.0.0';
  return Number(version.split('.')[0]) >= 1
    ? 'org.apache.pinot.plugin.stream.kafka30.KafkaConsumerFactory'
    : 'org.apache.pinot.plugin.stream.kafka20.KafkaConsumerFactory';
}
