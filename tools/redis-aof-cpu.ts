// `npx tsx tools/redis-aof-cpu.ts [--port 6399] [--rate 10000] [--ttl-s 120] [--warm-s 120] [--seconds 240]
//   [--settings "percentage=100,rdbcompression=yes;percentage=400,rdbcompression=no"]`:
// what Redis's append-only file costs the click path's Redis in CPU, rewrites included. For each
// setting it starts a private redis-server (the stack's arguments, `stack/services/redis.ts`, on a
// port and directory of its own, with the setting's `auto-aof-rewrite-percentage` and
// `rdbcompression`), sends first-click checks of new impression ids through the click path's own
// `redisDedup` (one script call per 3 ms window, as the click process does) at `--rate` a second, each
// key living `--ttl-s`, so the key set reaches rate × ttl and its keys expire as they do in production
// (a DEL in the file for each). After `--warm-s` it measures for `--seconds`: Redis's CPU with its
// children's (the rewrites run in a forked child; INFO's used_cpu_*_children), the rewrites done, the
// file's largest size. The TTL only sets the key set's size: the rewrites' cost per check does not
// depend on it (a rewrite's work and the growth between two rewrites are both proportional to it).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { createClickRedis, redisDedup, redisReady } from '../ingest/dedup.js';
import { redisArgs } from '../stack/services/redis.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1]!;
};
const PORT = Number(arg('--port', '6399'));
const RATE = Number(arg('--rate', '10000'));
const TTL_MS = Number(arg('--ttl-s', '120')) * 1000;
const WARM_S = Number(arg('--warm-s', '120'));
const SECONDS = Number(arg('--seconds', '240'));
const SETTINGS = arg('--settings', 'percentage=100,rdbcompression=yes;percentage=400,rdbcompression=no')
  .split(';')
  .map((s) => Object.fromEntries(s.split(',').map((kv) => kv.split('=') as [string, string])));

interface Sample {
  cpu: number;
  rewrites: number;
  aofBytes: number;
  keys: number;
}

async function sample(redis: Redis): Promise<Sample> {
  const info = await redis.info();
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1] ?? NaN);
  const cpu =
    field('used_cpu_user') +
    field('used_cpu_sys') +
    field('used_cpu_user_children') +
    field('used_cpu_sys_children');
  const keys = Number(/^db0:keys=(\d+)/m.exec(info)?.[1] ?? 0);
  return { cpu, rewrites: field('aof_rewrites'), aofBytes: field('aof_current_size'), keys };
}

async function measure(setting: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-aof-cpu-'));
  const port = PORT;
  const args = redisArgs('127.0.0.1', port, dir);
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) args[args.indexOf(`--${name}`) + 1] = value;
  };
  set('auto-aof-rewrite-percentage', setting.percentage);
  set('rdbcompression', setting.rdbcompression);
  const server: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const redis = createClickRedis(`redis://127.0.0.1:${port}`);
  try {
    if (!(await redisReady(redis, 10_000))) throw new Error(`redis-server on ${port} did not start`);
    const dedup = redisDedup(redis, 1000, 3);
    let sent = 0;
    let unavailable = 0;
    const started = performance.now();
    let marks: { at: Sample; sent: number } | undefined;
    let maxAof = 0;
    const end = started + (WARM_S + SECONDS) * 1000;
    let lastReport = started;
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      const checks: Promise<unknown>[] = [];
      for (; sent < due; sent++) {
        checks.push(
          dedup.firstClick(randomUUID(), TTL_MS).then((a) => {
            if (a === 'unavailable') unavailable++;
          }),
        );
      }
      await Promise.all(checks);
      if (!marks && performance.now() - started >= WARM_S * 1000) marks = { at: await sample(redis), sent };
      if (performance.now() - lastReport >= 10_000) {
        lastReport = performance.now();
        const s = await sample(redis);
        maxAof = Math.max(maxAof, s.aofBytes);
        process.stderr.write(
          `  ${((lastReport - started) / 1000).toFixed(0)} s: ${sent} checks, ${s.keys} keys, ` +
            `file ${(s.aofBytes / 1e6).toFixed(0)} MB, ${s.rewrites} rewrites\n`,
        );
      }
      await sleep(10);
    }
    const last = await sample(redis);
    maxAof = Math.max(maxAof, last.aofBytes);
    const checks = sent - marks!.sent;
    const label = Object.entries(setting)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(
      `${label}: ${checks} checks in ${SECONDS} s, Redis ${(((last.cpu - marks!.at.cpu) / checks) * 1000).toFixed(4)} ` +
        `CPU s per 1,000 (children included), ${last.rewrites - marks!.at.rewrites} rewrites, ` +
        `${last.keys} keys, file up to ${(maxAof / 1e6).toFixed(0)} MB, ${unavailable} unanswered`,
    );
  } finally {
    redis.disconnect();
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const setting of SETTINGS) await measure(setting);
