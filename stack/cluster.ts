// The local cluster (`npm run cluster:up | cluster:down | cluster:status`, `npm start -- --cluster`):
// the stack's services on this one machine with three Kafka brokers (KRaft, one quorum; `clicks`
// with replication factor 3 and min.insync.replicas 2) and Pinot with two servers in JVMs of their
// own (ZooKeeper, controller and broker share the third), REALTIME and OFFLINE tables replicated
// twice. PostgreSQL, Redis, S3 and Temporal stay single nodes. It lives beside the single-node stack:
// its own data folder (ADCLICK_CLUSTER_DIR, default .cluster/) and every port shifted by
// ADCLICK_CLUSTER_PORT_OFFSET (default 23000: every port from 25191 to 32468, below Linux's
// ephemeral range (32768-60999), where an outgoing connection may hold a port a service then cannot
// bind, and none equal to a port of the single-node stack shifted by 0, 10000 or 20000, the private
// stacks' offsets). The environment that points the app at it is written to <dir>/cluster.env.
// Costs: README "A local cluster".
//
// The configuration is read from the environment when common/config.ts is first imported, so this
// file sets the cluster's environment first and imports the stack's modules after.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dir = resolve(process.env.ADCLICK_CLUSTER_DIR ?? '.cluster');
const o = Number(process.env.ADCLICK_CLUSTER_PORT_OFFSET ?? 23_000);
const p = (port: number): number => port + o;

/** The three brokers' PLAINTEXT ports (each controller listens on the next port). */
export const clusterKafkaPorts = [p(9092), p(9094), p(9096)];
/** The two Pinot servers' netty and admin ports. */
export const clusterPinotServers = [
  { name: 'pinot-server-1', netty: p(8098), admin: p(8097) },
  { name: 'pinot-server-2', netty: p(8198), admin: p(8197) },
];

/** The environment of the app (and of the stack's tools) run against the cluster. */
export const clusterEnv: Record<string, string> = {
  ADCLICK_STACK_DIR: join(dir, '.stack'),
  KAFKA_BROKERS: clusterKafkaPorts.map((port) => `127.0.0.1:${port}`).join(','),
  KAFKA_REPLICATION_FACTOR: '3',
  KAFKA_MIN_INSYNC_REPLICAS: '2',
  DATABASE_URL: `postgres://adclick:adclick@127.0.0.1:${p(5432)}/adclick`,
  REDIS_URL: `redis://127.0.0.1:${p(6379)}`,
  S3_ENDPOINT: `http://127.0.0.1:${p(9000)}`,
  TEMPORAL_ADDRESS: `127.0.0.1:${p(7233)}`,
  TEMPORAL_UI_PORT: String(p(8233)),
  PINOT_CONTROLLER_URL: `http://127.0.0.1:${p(9002)}`,
  PINOT_BROKER_URL: `http://127.0.0.1:${p(8099)}`,
  PINOT_ZK_PORT: String(p(2191)),
  PINOT_SERVER_PORT: String(clusterPinotServers[0]!.netty),
  PINOT_SERVER_ADMIN_PORT: String(clusterPinotServers[0]!.admin),
  PINOT_REPLICATION: '2',
  // The shared Pinot JVM loads the JMX exporter as the single node's does: on a port of its own.
  PINOT_JMX_EXPORTER_PORT: String(p(9468)),
  PORT: String(p(8080)),
  API_PORT: String(p(8081)),
  SPEED_LAYER_METRICS_PORT: String(p(9464)),
  ARCHIVER_METRICS_PORT: String(p(9465)),
  WORKER_METRICS_PORT: String(p(9466)),
  ADCLICK_SPOOL_DIR: join(dir, 'spool'),
  // The click process's catalogue replica: the default (.stack/catalogue) is the single-node stack's,
  // whose offsets are of another Kafka's topic (ingest/catalogue-feed.ts would build it again).
  ADCLICK_CATALOGUE_DIR: join(dir, 'catalogue'),
};

async function main(): Promise<void> {
  Object.assign(process.env, clusterEnv);
  const [command = 'status', ...args] = process.argv.slice(2);
  const { clusterServices } = await import('./cluster-services.js');
  const cli = await import('./cli.js');
  const services = clusterServices();
  const envFile = join(dir, 'cluster.env');
  switch (command) {
    case 'up':
    case 'start': {
      await cli.up(args.includes('--quiet'), services);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        envFile,
        `# The local cluster (npm run cluster:up): source this before npm/tsx commands run against it.\n` +
          // So that `npm run cluster:status|down` and the drill find this cluster after a `source`.
          `export ADCLICK_CLUSTER_DIR=${dir}\n` +
          `export ADCLICK_CLUSTER_PORT_OFFSET=${o}\n` +
          Object.entries(clusterEnv)
            .map(([k, v]) => `export ${k}=${v}`)
            .join('\n') +
          '\n',
      );
      console.log(`[cluster] the app's environment is in ${envFile}:\n  source ${envFile}`);
      if (command === 'start') {
        const { startApp } = await import('./app.js');
        return startApp({ demo: args.includes('--demo') });
      }
      return;
    }
    case 'down':
      return cli.down(services);
    case 'status':
      if (!(await cli.status(services))) process.exitCode = 1;
      return;
    default:
      throw new Error(`unknown command ${command}; use up | down | status | start`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e: unknown) => {
    console.error(`[cluster] ${(e as Error).message}`);
    process.exit(1);
  });
}
