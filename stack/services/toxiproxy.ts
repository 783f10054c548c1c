// Toxiproxy (Shopify's TCP proxy with injectable faults), for the fault matrix only: the drill and
// its tests start it on demand (`ensureToxiproxy`), `npm start` never does. The server is built once
// into the cache with `go install` (the module's command is called `server`; it is kept as
// `toxiproxy-server`). Its HTTP API listens on TOXIPROXY_PORT, by default 8474 shifted by the same
// offset as the stack's Kafka port from 9092 (a private stack on +20000 gets 28474).
//
// Kafka behind a proxy: a client learns the broker's address from metadata, so a proxy in front of
// the bootstrap port alone would be bypassed after the first request. The stack's Kafka has a second
// listener for that (stack/services/kafka.ts): PROXIED on the Kafka port + 3, advertised as the Kafka
// port + 4 — where the proxy made by the fault matrix listens. Clients of the plain port never see it.
import { renameSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostPort, kafkaBrokers } from '../../common/config.js';
import type { StackService } from '../service.js';
import {
  binDir,
  cacheDir,
  httpOk,
  log,
  logFile,
  runStep,
  runningPid,
  startDetached,
  waitUntil,
  which,
} from '../runtime.js';

const MODULE = 'github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0';
const kafkaAddress = hostPort(kafkaBrokers()[0]!);
const offset = kafkaAddress.port - 9092;
export const toxiproxyHost = '127.0.0.1';
export const toxiproxyPort = Number(process.env.TOXIPROXY_PORT ?? 8474 + offset);
export const toxiproxyUrl = `http://${toxiproxyHost}:${toxiproxyPort}`;
/** Where the broker's PROXIED listener listens, and the address it advertises (the proxy's). */
export const kafkaProxiedListenerPort = kafkaAddress.port + 3;
export const kafkaProxyPort = kafkaAddress.port + 4;

const binary = join(binDir, 'toxiproxy-server');

async function install(): Promise<string> {
  if (existsSync(binary)) return binary;
  if (!which('go')) throw new Error(`toxiproxy needs Go to build (${MODULE}); install Go 1.22+`);
  log(`building toxiproxy with go install ${MODULE} (first time only, a minute or two) ...`);
  const gobin = join(cacheDir, 'go-toxiproxy');
  mkdirSync(gobin, { recursive: true });
  mkdirSync(binDir, { recursive: true });
  await runStep('toxiproxy', 'go', ['install', MODULE], { env: { GOBIN: gobin, CGO_ENABLED: '0' } });
  renameSync(join(gobin, 'server'), binary);
  return binary;
}

export const toxiproxy: StackService = {
  name: 'toxiproxy',
  address: `${toxiproxyHost}:${toxiproxyPort}`,
  startupTimeoutMs: 20_000,
  async install() {
    await install();
  },
  async start() {
    startDetached('toxiproxy', await install(), ['-host', toxiproxyHost, '-port', String(toxiproxyPort)]);
  },
  healthy() {
    return httpOk(`${toxiproxyUrl}/version`);
  },
};

/** Starts the stack's Toxiproxy unless it runs already; resolves once its API answers. */
export async function ensureToxiproxy(): Promise<void> {
  if (runningPid('toxiproxy') === undefined || !(await toxiproxy.healthy().catch(() => false))) {
    if (runningPid('toxiproxy') === undefined) await toxiproxy.start();
    await waitUntil(
      'toxiproxy',
      () => toxiproxy.healthy().catch(() => false),
      toxiproxy.startupTimeoutMs,
      logFile('toxiproxy'),
    );
  }
}
