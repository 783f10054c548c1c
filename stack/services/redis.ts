// Redis from Debian's packages, append-only file in .stack/data/redis so dedup keys survive restarts.
import { createConnection } from 'node:net';
import { config } from '../../common/config.js';
import type { StackService } from '../service.js';
import { dataDir, ensureDebianPackages, startDetached } from '../runtime.js';

const url = new URL(config.REDIS_URL);
const port = Number(url.port || 6379);

export const redis: StackService = {
  name: 'redis',
  address: `${url.hostname}:${port}`,
  // Redis answers only once its append-only file is loaded: after a day of benchmarks (millions of
  // dedup keys, ~2 GB) that took 30 s here, and the stack gave up on a Redis that was nearly ready.
  startupTimeoutMs: 180_000,
  install() {
    return ensureDebianPackages(['redis-server'], ['redis-server']);
  },
  async start() {
    startDetached('redis', 'redis-server', [
      '--bind',
      url.hostname,
      '--port',
      String(port),
      '--dir',
      dataDir('redis'),
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--daemonize',
      'no',
      '--maxmemory-policy',
      'volatile-ttl',
    ]);
  },
  healthy() {
    return new Promise((resolve) => {
      const socket = createConnection({ host: url.hostname, port });
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
    });
  },
};
