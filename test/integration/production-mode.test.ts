// Production mode through the real processes: with NODE_ENV=production every app process refuses to
// start on a development default or a drill setting, with one message naming each problem; with real
// secrets the API process starts, and its /metrics needs the admin key. Also: docker-compose.yml
// validates with the secrets set and names the one that is missing.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { sleep } from '../../common/wait.js';
import { ensureDebianPackages } from '../../stack/runtime.js';

const secret = (): string => randomBytes(24).toString('hex'); // 48 characters
const dbUrl = (user: string, password: string): string => {
  const u = new URL(config.DATABASE_URL);
  u.username = user;
  u.password = password;
  return u.href;
};

/** The environment of a production process: real-looking secrets unless `over` changes them. */
function productionEnv(
  over: Record<string, string | undefined>,
  base: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production', ...base };
  for (const name of [
    'ADCLICK_SIGNING_SECRET',
    'ADCLICK_CLOCK_OFFSET_MS',
    'BATCH_FAULT_PAUSE_MS',
    'PGPASSWORD',
  ])
    delete env[name];
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

interface Exit {
  code: number | null;
  stderr: string;
}

/** Runs `entry` to its exit (killed after `timeoutMs`). */
function runToExit(entry: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** Runs the jobs `width` at a time (a 2-core machine). */
async function inBatches<T>(jobs: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

describe('production mode', () => {
  const pool = createPool(1);
  // A database role with a real (random) password: the dev stack's own password is the public default.
  const role = `adclick_prod_${randomUUID().slice(0, 8)}`;
  const rolePassword = secret();
  let good: Record<string, string>;

  beforeAll(async () => {
    await migrate(pool);
    await pool.query(`create role ${role} login password '${rolePassword}'`);
    await pool.query(`grant ${new URL(config.DATABASE_URL).username} to ${role}`);
    good = {
      ADCLICK_ADMIN_KEY: secret(),
      ADCLICK_SIGNING_KEYS: `k1:${secret()}`,
      DATABASE_URL: dbUrl(role, rolePassword),
      S3_ACCESS_KEY_ID: `key-${secret()}`,
      S3_SECRET_ACCESS_KEY: secret(),
      SPEED_STORE: 'postgres',
    };
  });
  afterAll(async () => {
    await pool.query(`drop role if exists ${role}`).catch(() => undefined);
    await pool.end();
  });

  it('with every development default, each process refuses with one message naming every problem', async () => {
    const entries = [
      'apps/api.ts',
      'apps/click.ts',
      'apps/speed-layer.ts',
      'apps/archiver.ts',
      'apps/worker.ts',
    ];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      ADCLICK_CLOCK_OFFSET_MS: '-7200000',
    };
    for (const name of [
      'ADCLICK_ADMIN_KEY',
      'ADCLICK_SIGNING_KEYS',
      'ADCLICK_SIGNING_SECRET',
      'DATABASE_URL',
      'S3_ACCESS_KEY_ID',
      'S3_SECRET_ACCESS_KEY',
    ])
      delete env[name];
    const exits = await inBatches(
      entries.map((entry) => () => runToExit(entry, env)),
      2,
    );
    for (const [i, exit] of exits.entries()) {
      expect(exit.code, entries[i]).not.toBe(0);
      expect(exit.stderr.match(/Refusing to start/g), entries[i]).toHaveLength(1);
      for (const name of [
        'ADCLICK_ADMIN_KEY',
        'ADCLICK_SIGNING_KEYS',
        'DATABASE_URL',
        'S3_ACCESS_KEY_ID',
        'S3_SECRET_ACCESS_KEY',
        'ADCLICK_CLOCK_OFFSET_MS',
      ])
        expect(exit.stderr, `${entries[i]} names ${name}`).toContain(name);
    }
  });

  // Each case changes one setting of a good production environment; the process must name it.
  const cases: Array<[what: string, over: () => Record<string, string | undefined>, named: string]> = [
    ['admin key not set', () => ({ ADCLICK_ADMIN_KEY: undefined }), 'ADCLICK_ADMIN_KEY is not set'],
    [
      'admin key = dev default',
      () => ({ ADCLICK_ADMIN_KEY: 'dev-admin-key' }),
      'ADCLICK_ADMIN_KEY is the public',
    ],
    [
      'admin key of 31 characters',
      () => ({ ADCLICK_ADMIN_KEY: 'x'.repeat(31) }),
      'ADCLICK_ADMIN_KEY is shorter than 32',
    ],
    [
      'no signing key',
      () => ({ ADCLICK_SIGNING_KEYS: undefined }),
      'ADCLICK_SIGNING_KEYS (or ADCLICK_SIGNING_SECRET) is not set',
    ],
    [
      'signing secret = dev default',
      () => ({ ADCLICK_SIGNING_KEYS: undefined, ADCLICK_SIGNING_SECRET: 'dev-signing-secret-change-me' }),
      'ADCLICK_SIGNING_SECRET is the public',
    ],
    [
      'a short signing key',
      () => ({ ADCLICK_SIGNING_KEYS: `k2:${'y'.repeat(20)},k1:${secret()}` }),
      'key "k2" is shorter',
    ],
    ['database URL not set', () => ({ DATABASE_URL: undefined }), 'DATABASE_URL is not set'],
    [
      'database password = dev default',
      () => ({ DATABASE_URL: dbUrl('adclick', 'adclick') }),
      'DATABASE_URL uses the public',
    ],
    ['S3 access key not set', () => ({ S3_ACCESS_KEY_ID: undefined }), 'S3_ACCESS_KEY_ID is not set'],
    [
      'S3 secret = dev default',
      () => ({ S3_SECRET_ACCESS_KEY: 'adclick-dev-secret' }),
      'S3_SECRET_ACCESS_KEY is the public',
    ],
    [
      'a drill clock offset',
      () => ({ ADCLICK_CLOCK_OFFSET_MS: '-7200000' }),
      'ADCLICK_CLOCK_OFFSET_MS is set',
    ],
    ['a drill fault pause', () => ({ BATCH_FAULT_PAUSE_MS: '5000' }), 'BATCH_FAULT_PAUSE_MS is set'],
  ];

  it('each default secret, short key or drill setting alone: the API process exits non-zero naming it', async () => {
    const exits = await inBatches(
      cases.map(
        ([, over]) =>
          () =>
            runToExit('apps/api.ts', productionEnv(over(), good)),
      ),
      2,
    );
    for (const [i, [what, , named]] of cases.entries()) {
      expect(exits[i]!.code, what).not.toBe(0);
      expect(exits[i]!.stderr, what).toContain('Refusing to start in production');
      expect(exits[i]!.stderr, what).toContain(named);
      // Only that problem: the message names one.
      expect(exits[i]!.stderr, what).toContain('with this problem:');
    }
  });

  it('with real secrets the API process starts; its /metrics needs the admin key', async () => {
    const port = await freePort();
    const env = productionEnv({ API_PORT: String(port), HOST: '127.0.0.1' }, good);
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/api.ts'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 60_000;
      let up = false;
      while (!up && Date.now() < deadline && child.exitCode === null) {
        up = await fetch(`${base}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!up) await sleep(250);
      }
      expect(up, output).toBe(true);
      // Live is not ready: the readiness probes of its dependencies may still be on their way on a busy
      // machine (a 503 there is the truth), so wait for ready as a load balancer does.
      let ready = { status: 0, body: '' };
      while (ready.status !== 200 && Date.now() < deadline) {
        const r = await fetch(`${base}/readyz`);
        ready = { status: r.status, body: await r.text() };
        if (ready.status !== 200) await sleep(250);
      }
      expect(ready.status, ready.body).toBe(200);
      const anonymous = await fetch(`${base}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      const admin = await fetch(`${base}/metrics`, {
        headers: { authorization: `Bearer ${good.ADCLICK_ADMIN_KEY}` },
      });
      expect(admin.status).toBe(200);
      expect(await admin.text()).toContain('serving_query_duration_seconds');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  // Debian's docker-compose (installed here when missing, as the stack installs its packages), or
  // Docker's own `docker compose` plugin where it works: a `docker` CLI without the plugin (some CI
  // images have one) answers `--version` but not `compose`.
  it('docker compose config: valid with the secrets set; names a missing one', async () => {
    const plugin = spawnSync('docker', ['compose', 'version']).status === 0;
    if (!plugin) await ensureDebianPackages(['docker-compose'], ['docker-compose']);
    const [bin, ...sub] = plugin ? ['docker', 'compose'] : ['docker-compose'];
    // An empty env file: a developer's own .env must not fill in what the test leaves unset.
    const envFile = join(mkdtempSync(join(tmpdir(), 'adclick-compose-')), 'empty.env');
    writeFileSync(envFile, '');
    const args = [...sub, '--env-file', envFile, 'config', '-q'];
    const secrets = {
      ADCLICK_ADMIN_KEY: secret(),
      ADCLICK_SIGNING_KEYS: `k1:${secret()}`,
      POSTGRES_PASSWORD: secret(),
      TEMPORAL_DB_PASSWORD: secret(),
      S3_ACCESS_KEY_ID: secret(),
      S3_SECRET_ACCESS_KEY: secret(),
      GRAFANA_ADMIN_PASSWORD: secret(),
    };
    const run = (env: Record<string, string>) =>
      spawnSync(bin!, args, { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
    const ok = run(secrets);
    expect(ok.status, ok.stderr).toBe(0);
    for (const name of Object.keys(secrets)) {
      const rest = Object.fromEntries(Object.entries(secrets).filter(([k]) => k !== name));
      const missing = run(rest);
      expect(missing.status, name).not.toBe(0);
      expect(missing.stderr, name).toContain(`set ${name}`);
    }
  }, 180_000);
});
