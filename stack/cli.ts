// The local stack's command line: `up`, `down`, `status`, `logs <service>`, and `start` (the stack plus
// the app). Installs what is missing into the cache, starts each service detached, waits for health.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { StackService } from './service.js';
import { kafka } from './services/kafka.js';
import { pinot } from './services/pinot.js';
import { postgres } from './services/postgres.js';
import { prometheus } from './services/prometheus.js';
import { redis } from './services/redis.js';
import { s3 } from './services/s3.js';
import { temporal } from './services/temporal.js';
import { toxiproxy } from './services/toxiproxy.js';
import { logFile, rssMiB, runningPid, stopDetached, waitUntil } from './runtime.js';

export const services: StackService[] = [postgres, redis, s3, kafka, temporal, pinot, prometheus];
/** Started on demand only (the fault matrix starts Toxiproxy); `down` stops them, `logs` shows them. */
const onDemand: StackService[] = [toxiproxy];

async function probe(service: StackService): Promise<boolean> {
  return service.healthy().catch(() => false);
}

async function bringUp(service: StackService, started: Map<string, Promise<void>>): Promise<void> {
  for (const dep of service.dependsOn ?? []) await started.get(dep);
  const found = runningPid(service.name) !== undefined;
  if (!found) {
    if (await probe(service)) {
      throw new Error(
        `${service.name}: something else already answers on ${service.address}; stop it or change its address in the environment`,
      );
    }
    await service.start();
  }
  let startedAgain = false;
  const healthy = async (): Promise<boolean> => {
    if (await probe(service)) return true;
    // Found running, never healthy, and now gone: it was on its way out (stopped a moment ago, its
    // JVM still exiting), not on its way up. It is started now, not waited for until the timeout.
    if (found && !startedAgain && runningPid(service.name) === undefined) {
      startedAgain = true;
      await service.start();
    }
    return false;
  };
  await waitUntil(service.name, healthy, service.startupTimeoutMs, logFile(service.name));
  if (runningPid(service.name) === undefined)
    throw new Error(`${service.name} exited during start; see ${logFile(service.name)}`);
  await service.prepare?.();
}

export async function up(quiet = false, list = services): Promise<void> {
  const t0 = Date.now();
  await Promise.all(list.map((s) => s.install()));
  const started = new Map<string, Promise<void>>();
  for (const s of list) started.set(s.name, bringUp(s, started));
  const results = await Promise.allSettled(started.values());
  const failures = results.flatMap((r) =>
    r.status === 'rejected' ? [String((r.reason as Error).message ?? r.reason)] : [],
  );
  if (!quiet || failures.length > 0) await status(list);
  if (failures.length > 0) throw new Error(`stack did not come up:\n  ${failures.join('\n  ')}`);
  console.log(`[stack] up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

export async function down(list = [...onDemand, ...services]): Promise<void> {
  // Reverse order: dependants first.
  for (const s of [...list].reverse()) {
    if (await stopDetached(s.name)) console.log(`[stack] stopped ${s.name}`);
  }
}

export async function status(list = services): Promise<boolean> {
  const rows = await Promise.all(
    list.map(async (s) => {
      const pid = runningPid(s.name);
      const healthy = pid !== undefined && (await probe(s));
      return {
        service: s.name,
        address: s.address,
        state: pid === undefined ? 'stopped' : healthy ? 'healthy' : 'unhealthy',
        pid: pid ?? '-',
        rss: pid === undefined ? '-' : `${rssMiB(pid)} MiB`,
        log: logFile(s.name),
      };
    }),
  );
  console.table(rows);
  const rss = rows.reduce(
    (a, r) => a + (typeof r.rss === 'string' && r.rss !== '-' ? parseInt(r.rss, 10) : 0),
    0,
  );
  console.log(`[stack] resident memory of the services: ${rss} MiB`);
  return rows.every((r) => r.state === 'healthy');
}

function logs(name: string | undefined, lines = 60): void {
  const s = [...services, ...onDemand].find((x) => x.name === name);
  if (!s) throw new Error(`usage: npm run stack:logs -- <${services.map((x) => x.name).join('|')}>`);
  const file = logFile(s.name);
  if (!existsSync(file)) throw new Error(`no log yet at ${file}`);
  console.log(readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'));
  console.log(`(last ${lines} lines of ${file}; follow it with: tail -f ${file})`);
}

async function main(): Promise<void> {
  const [command = 'status', ...args] = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  if (quiet) process.env.ADCLICK_STACK_QUIET = '1';
  switch (command) {
    case 'up':
      return up(quiet);
    case 'down':
      return down();
    case 'status':
      if (!(await status())) process.exitCode = 1;
      return;
    case 'logs':
      return logs(args[0]);
    case 'start': {
      if (args.includes('--cluster')) {
        // The cluster's environment must be set before the configuration is read: its own process.
        const r = spawnSync(process.execPath, ['--import', 'tsx', 'stack/cluster.ts', 'start', ...args], {
          stdio: 'inherit',
        });
        process.exitCode = r.status ?? 1;
        return;
      }
      const { startApp } = await import('./app.js');
      await up();
      return startApp({ demo: args.includes('--demo') });
    }
    default:
      throw new Error(`unknown command ${command}; use up | down | status | logs <service> | start`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e: unknown) => {
    console.error(`[stack] ${(e as Error).message}`);
    process.exit(1);
  });
}
