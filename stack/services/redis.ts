// Redis from Debian's packages, append-only file in .stack/data/redis so dedup keys survive restarts.
import { createConnection } from 'node:net';
import { config } from '../../common/config.js';
import type { StackService } from '../service.js';
import { dataDir, ensureDebianPackages, startDetached } from '../runtime.js';

const url = new URL(config.REDIS_URL);
const port = Number(url.port || 6379);

/**
 * The stack's Redis: an append-only file (fsync once a second) and no RDB snapshots. The file is
 * rewritten when it has grown to three times its size after the last rewrite (Redis's default:
 * twice), and its base is written uncompressed. Each first click appends a SET and, when its key
 * expires, a DEL (~170 bytes) to a base of ~55 bytes a key, so at Redis's default the whole key set
 * was rewritten after about a third of it had been added: ~4 µs of CPU a first click
 * (`tools/redis-aof-cpu.ts`). Rewriting less often costs a longer restart: Redis replays the file's
 * commands at ~16 MB/s here: at 400 % a restart took 58 s, 48 of them replaying 787 MB (the fault
 * matrix's `redis:killed`), where the default's replay is at most one base, ~15 s. 200 % halves the
 * rewrites and at most doubles the replay (README, "eighteenth round"; docs/capacity.md). The keys
 * are random ids, which LZF does not shrink.
 */
export function redisArgs(host: string, port: number, dir: string): string[] {
  return [
    '--bind',
    host,
    '--port',
    String(port),
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--auto-aof-rewrite-percentage',
    String(AOF_REWRITE_PERCENTAGE),
    '--rdbcompression',
    'no',
    '--save',
    '',
    '--daemonize',
    'no',
    '--maxmemory-policy',
    'volatile-ttl',
  ];
}

const AOF_REWRITE_PERCENTAGE = 200;

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
    startDetached('redis', 'redis-server', redisArgs(url.hostname, port, dataDir('redis')));
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
