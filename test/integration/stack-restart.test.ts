// `stack:up` right after a service was stopped: the old process may still be exiting (a JVM's
// shutdown takes seconds), and was taken for one starting up: `up` waited for it until the
// service's startup timeout (240 s for Pinot) and failed. Now it starts the service once the old
// process is gone. A stand-in service (a TCP listener) keeps this test to a few seconds.
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { up } from '../../stack/cli.js';
import { logFile, startDetached, stopDetached, tcpOpen } from '../../stack/runtime.js';
import type { StackService } from '../../stack/service.js';

const name = `restart-probe-${process.pid}`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

afterAll(async () => {
  await stopDetached(name);
  rmSync(logFile(name), { force: true });
});

it('starts a service whose old process was still exiting, instead of waiting for it to time out', async () => {
  const port = await freePort();
  const service: StackService = {
    name,
    address: `127.0.0.1:${port}`,
    startupTimeoutMs: 20_000,
    install: async () => undefined,
    start: async () => {
      startDetached(name, process.execPath, [
        '-e',
        `require('node:net').createServer().listen(${port}, '127.0.0.1')`,
      ]);
    },
    healthy: () => tcpOpen('127.0.0.1', port),
  };
  // The old process: recorded as the service, alive for two more seconds, never answering.
  startDetached(name, 'sleep', ['2']);
  const t0 = Date.now();
  await up(true, [service]);
  expect(await tcpOpen('127.0.0.1', port)).toBe(true);
  expect(Date.now() - t0).toBeLessThan(15_000);
});
