// Apache Pinot 0.11.0 from Maven Central jars on Java 17: one JVM (stack/pinot/PinotLauncher.java) runs
// an embedded ZooKeeper plus controller, broker and server. 0.11.0 is the newest release whose server and
// Kafka consumer plugin the registry serves (see stack/maven/pinot/pom.xml). Every host is pinned to
// localhost (Pinot otherwise finds its address by a UDP "connect" to a public IP), HTTP listeners bind
// to loopback, and ZooKeeper, deep store and segments live in .stack/data/pinot, so tables survive a
// restart (only `QuickStart` would wipe them, which is why it is not used).
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { config, urlPort } from '../../common/config.js';
import { pinotJavaOpens } from '../../common/pinot.js';
import type { StackService } from '../service.js';
import { jmxExporterJvmArgs } from './prometheus.js';
import {
  cacheDir,
  dataDir,
  ensureDebianPackages,
  ensureMavenJars,
  httpOk,
  runStep,
  startDetached,
} from '../runtime.js';

const controllerUrl = new URL(config.PINOT_CONTROLLER_URL);
const brokerUrl = new URL(config.PINOT_BROKER_URL);
const controllerPort = urlPort(config.PINOT_CONTROLLER_URL);
const brokerPort = urlPort(config.PINOT_BROKER_URL);
const zkPort = config.PINOT_ZK_PORT;
const zkAddress = `127.0.0.1:${zkPort}`;
// The server's query (netty) and admin ports are internal to Pinot; only the controller and broker
// are client-facing, so these two are fixed here rather than configurable.
const serverNettyPort = config.PINOT_SERVER_PORT;
const serverAdminPort = config.PINOT_SERVER_ADMIN_PORT;
const cluster = 'adclick';

const libDir = join(cacheDir, 'pinot', 'lib');
const launcherDir = join(cacheDir, 'pinot', 'launcher');
const launcherSource = resolve('stack/pinot/PinotLauncher.java');
const log4j = resolve('stack/pinot/log4j2.xml');
const julConfig = resolve('stack/pinot/jul.properties');

function writeProperties(file: string, props: Record<string, string | number | boolean>): string {
  const text = Object.entries(props)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n');
  writeFileSync(
    file,
    `# written by stack/services/pinot.ts on every start; edit that file instead\n${text}\n`,
  );
  return file;
}

/** The server role's properties: the stack's embedded server, or a cluster's server JVM. */
function serverProperties(
  dir: string,
  nettyPort: number,
  adminPort: number,
): Record<string, string | number | boolean> {
  return {
    'pinot.service.role': 'SERVER',
    'pinot.cluster.name': cluster,
    'pinot.zk.server': zkAddress,
    'pinot.server.netty.host': 'localhost',
    'pinot.server.netty.port': nettyPort,
    'pinot.server.adminapi.access.protocols': 'http',
    'pinot.server.adminapi.access.protocols.http.host': '127.0.0.1',
    'pinot.server.adminapi.access.protocols.http.port': adminPort,
    'pinot.server.grpc.enable': false,
    'pinot.server.instance.dataDir': join(dir, 'server', 'index'),
    'pinot.server.instance.segmentTarDir': join(dir, 'server', 'segmentTar'),
    'pinot.server.instance.consumerDir': join(dir, 'server', 'consumer'),
    // Consuming segments in memory-mapped files under consumerDir rather than on the heap.
    'pinot.server.instance.realtime.alloc.offheap': true,
    // After a restart the server stays hidden from the broker until its segments are loaded; check
    // every second rather than every 10 s. On stop, do not wait 15 s for queries to drain.
    'pinot.server.startup.serviceStatusCheckIntervalMs': 1000,
    'pinot.server.startup.timeoutMs': 120_000,
    'pinot.server.shutdown.enableQueryCheck': false,
  };
}

/** zoo.cfg and one properties file per role, all regenerated on each start (no server: `withServer` false). */
function writeConfigs(dir: string, withServer: boolean): string[] {
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  const zooCfg = writeProperties(join(conf, 'zoo.cfg'), {
    dataDir: join(dir, 'zookeeper'),
    clientPort: zkPort,
    clientPortAddress: '127.0.0.1',
    tickTime: 2000,
    maxClientCnxns: 0,
    'admin.enableServer': false,
  });
  const controller = writeProperties(join(conf, 'controller.properties'), {
    'pinot.service.role': 'CONTROLLER',
    'controller.helix.cluster.name': cluster,
    'controller.zk.str': zkAddress,
    'controller.host': 'localhost',
    'controller.access.protocols': 'http',
    'controller.access.protocols.http.host': controllerUrl.hostname,
    'controller.access.protocols.http.port': controllerPort,
    'controller.vip.host': 'localhost',
    'controller.vip.port': controllerPort,
    // Deep store: completed realtime segments are uploaded here and downloaded back on restart.
    'controller.data.dir': join(dir, 'controller', 'deepstore'),
    'controller.local.temp.dir': join(dir, 'controller', 'tmp'),
    // Partitions added to a table's topic are consumed once this task runs (default hourly). The
    // speed layer also runs it when it grows minute_counts; this is the backstop.
    'controller.realtime.segment.validation.frequencyPeriod': '5m',
  });
  const broker = writeProperties(join(conf, 'broker.properties'), {
    'pinot.service.role': 'BROKER',
    'pinot.cluster.name': cluster,
    'pinot.zk.server': zkAddress,
    'pinot.broker.hostname': 'localhost',
    'pinot.broker.client.access.protocols': 'http',
    'pinot.broker.client.access.protocols.http.host': brokerUrl.hostname,
    'pinot.broker.client.access.protocols.http.port': brokerPort,
    // A local stack stops at once: no 10 s grace for queries in flight (the stack's stop allows 20 s).
    'pinot.broker.delayShutdownTimeMs': 0,
  });
  if (!withServer) return [zooCfg, zkAddress, cluster, controller, broker];
  const server = writeProperties(
    join(conf, 'server.properties'),
    serverProperties(dir, serverNettyPort, serverAdminPort),
  );
  return [zooCfg, zkAddress, cluster, controller, broker, server];
}

/** Compiles the launcher into the cache unless its class is newer than the source. */
async function ensureLauncher(): Promise<void> {
  const compiled = join(launcherDir, 'PinotLauncher.class');
  if (existsSync(compiled) && statSync(compiled).mtimeMs >= statSync(launcherSource).mtimeMs) return;
  await ensureDebianPackages(['javac'], ['openjdk-17-jdk-headless']);
  mkdirSync(launcherDir, { recursive: true });
  await runStep('pinot', 'javac', ['-nowarn', '-cp', `${libDir}/*`, '-d', launcherDir, launcherSource]);
}

async function json(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

const jvm = (tmp: string, heap: string, young: string): string[] => [
  `-Xms${heap}`,
  `-Xmx${heap}`,
  // A young generation of its own size. With the serial collector's default (a third of a heap
  // that started at 256 MB: 70 MB of eden) one system bench run of 1.24M clicks cost 102 young
  // collections of ~59 ms and two full ones of ~1 s; with 384 MB, 21 young ones of ~184 ms and no
  // full one: half the time in GC (README, "CPU per click, seventh round").
  `-Xmn${young}`,
  '-XX:MaxDirectMemorySize=256m',
  // One collector thread, as Kafka's: on a small machine G1's concurrent and refinement threads
  // (and its costlier write barriers) cost more CPU than the serial collector's short pauses.
  '-XX:+UseSerialGC',
  '-XX:+ExitOnOutOfMemoryError',
  ...pinotJavaOpens,
  `-Djava.io.tmpdir=${tmp}`,
  `-Dlog4j2.configurationFile=${log4j}`,
  `-Djava.util.logging.config.file=${julConfig}`,
  '-Dzookeeper.admin.enableServer=false',
  '-cp',
  `${launcherDir}:${libDir}/*`,
  'PinotLauncher',
];

/** Is the server of this admin port up, and enabled in the cluster (its segments loaded)? */
async function serverHealthy(nettyPort: number, adminPort: number): Promise<boolean> {
  if (!(await httpOk(`http://127.0.0.1:${adminPort}/health`))) return false;
  const server = (await json(`${controllerUrl.origin}/instances/Server_localhost_${nettyPort}`)) as {
    enabled?: unknown;
  };
  return server.enabled === true;
}

/**
 * The Pinot JVM: ZooKeeper, controller and broker, plus the server unless `withServer` is false (the
 * local cluster runs its servers in JVMs of their own, `pinotServer`).
 */
export function pinotService(withServer: boolean): StackService {
  return {
    name: 'pinot',
    address: `${controllerUrl.host} (broker ${brokerUrl.host}, zk :${zkPort})`,
    startupTimeoutMs: 240_000,
    dependsOn: ['kafka'],
    async install() {
      await ensureMavenJars('pinot', resolve('stack/maven/pinot'), libDir);
      await ensureLauncher();
    },
    async start() {
      const dir = dataDir('pinot');
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp, { recursive: true });
      startDetached(
        'pinot',
        'java',
        // 1.5 GB (1,152 MB old): the speed table's consuming segments take up to 2,000,000 rows
        // (SPEED_PINOT_CONSUMING_ROWS) at 115 (Zipf over 10M ads) to 260 (every row a distinct ad)
        // bytes a row, up to ~520 MB, beside the JVM's own ~60 MB and the committed segments' (README,
        // "Pinot's heap under long peak load"). With 1 GB that worst case left under 100 MB.
        [...jmxExporterJvmArgs('pinot'), ...jvm(tmp, '1536m', '384m'), ...writeConfigs(dir, withServer)],
        { background: true },
      );
    },
    async healthy() {
      if (!(await httpOk(`${controllerUrl.origin}/health`))) return false;
      if (!(await httpOk(`${brokerUrl.origin}/health`))) return false;
      // The server answers /health only once it has joined the cluster and loaded its segments.
      return !withServer || serverHealthy(serverNettyPort, serverAdminPort);
    },
  };
}

export const pinot: StackService = pinotService(true);

/** One more Pinot server in a JVM of its own (the local cluster's), joining the stack's ZooKeeper. */
export function pinotServer(name: string, nettyPort: number, adminPort: number): StackService {
  return {
    name,
    address: `localhost:${nettyPort} (admin 127.0.0.1:${adminPort})`,
    startupTimeoutMs: 240_000,
    dependsOn: ['pinot'],
    install() {
      return undefined;
    },
    async start() {
      const dir = dataDir(name);
      const tmp = join(dir, 'tmp');
      mkdirSync(join(dir, 'conf'), { recursive: true });
      mkdirSync(tmp, { recursive: true });
      const props = writeProperties(
        join(dir, 'conf', 'server.properties'),
        serverProperties(dir, nettyPort, adminPort),
      );
      startDetached(name, 'java', [...jvm(tmp, '768m', '288m'), '-', zkAddress, cluster, props], {
        background: true,
      });
    },
    healthy: () => serverHealthy(nettyPort, adminPort),
  };
}
