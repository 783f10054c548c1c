// PostgreSQL from Debian's packages, one cluster in .stack/data/postgres. The server refuses to run
// as root, so as root it runs as the `postgres` system user the Debian package creates.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { config } from '../../common/config.js';
import type { StackService } from '../service.js';
import { dataDir, ensureDebianPackages, isRoot, runStep, startDetached } from '../runtime.js';

const url = new URL(config.DATABASE_URL);
const port = Number(url.port || 5432);
const user = decodeURIComponent(url.username);
const password = decodeURIComponent(url.password);
const database = url.pathname.slice(1);

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions[0]) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql');
  return join(root, versions[0], 'bin');
}

/** As root, run as the postgres system user (setpriv execs, so the PID stays the server's). */
function asPostgres(command: string, args: string[]): [string, string[]] {
  if (!isRoot()) return [command, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args]];
}

function uid(name: string): number {
  return Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
}

export const postgres: StackService = {
  name: 'postgres',
  address: `${url.hostname}:${port}`,
  startupTimeoutMs: 60_000,
  install() {
    return ensureDebianPackages(['/usr/lib/postgresql'], ['postgresql']);
  },
  async start() {
    const dir = dataDir('postgres');
    const pgdata = join(dir, 'pgdata');
    if (isRoot()) {
      const pgUid = uid('postgres');
      chownSync(dir, pgUid, pgUid);
    }
    if (!existsSync(join(pgdata, 'PG_VERSION'))) {
      const pwfile = join(dir, '.pw');
      writeFileSync(pwfile, password, { mode: 0o600 });
      if (isRoot()) chownSync(pwfile, uid('postgres'), uid('postgres'));
      const [cmd, args] = asPostgres(join(pgBin(), 'initdb'), [
        '-D',
        pgdata,
        '-U',
        user,
        '--pwfile',
        pwfile,
        '--auth=scram-sha-256',
        '-E',
        'UTF8',
        '--locale=C.UTF-8',
      ]);
      await runStep('postgres', cmd, args);
    }
    const [cmd, args] = asPostgres(join(pgBin(), 'postgres'), [
      '-D',
      pgdata,
      '-p',
      String(port),
      '-h',
      url.hostname,
      '-k',
      dir,
      '-c',
      'shared_buffers=512MB',
      '-c',
      'max_connections=200',
      '-c',
      'synchronous_commit=on',
      '-c',
      'max_wal_size=4GB',
      '-c',
      'checkpoint_timeout=15min',
      '-c',
      'logging_collector=off',
    ]);
    startDetached('postgres', cmd, args, { background: true });
  },
  async healthy() {
    const client = new pg.Client({
      host: url.hostname,
      port,
      user,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 1000,
    });
    try {
      await client.connect();
      await client.query('select 1');
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  },
  async prepare() {
    const client = new pg.Client({ host: url.hostname, port, user, password, database: 'postgres' });
    await client.connect();
    try {
      const exists = await client.query('select 1 from pg_database where datname = $1', [database]);
      // CREATE DATABASE takes no parameters; the name comes from our own config and is quoted.
      if (exists.rowCount === 0) await client.query(`create database "${database.replaceAll('"', '""')}"`);
    } finally {
      await client.end();
    }
  },
};
