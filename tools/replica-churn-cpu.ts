// `npx tsx tools/replica-churn-cpu.ts [--ads 2000000] [--rate 10000] [--seconds 20]
//   [--changes 0,0,10,100,1000]`: what ads that change cost a click worker's catalogue reads. Builds
// a private replica (ingest/catalogue-replica.ts) of `--ads` ads in a temporary directory, then for
// each rate of changes: a writer process (this script with --writer, as the click primary's feed)
// applies changes of one random ad at that rate, while this process reads ads drawn by Zipf(1), as
// a click worker does, `--rate` a second for `--seconds`. Prints per rate the time spent in `get`
// per read (µs; the reads are synchronous, so on a quiet machine it is their CPU) and the share of
// reads that went to the B-tree instead of the ads kept decoded. The first round warms the kept ads
// (every round reads the same sequence of ads).
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ZipfSampler } from '../bench/zipf.js';
import { CatalogueReplica, type ReplicaAd } from '../ingest/catalogue-replica.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1]!;
};
const ADS = Number(arg('--ads', '2000000'));
const ad = (id: number, v: number): ReplicaAd => ({
  advertiserId: String(1 + (id % 10_000)),
  redirectUrl: `https://advertiser-${id % 10_000}.example/landing/${id}?v=${v}`,
});

if (process.argv.includes('--writer')) {
  // The feed's side: one transaction per change, paced.
  const replica = CatalogueReplica.open(arg('--dir', ''));
  const perSecond = Number(arg('--per-second', '0'));
  let v = 0;
  process.on('message', () => process.exit(0));
  const started = performance.now();
  for (let done = 0; ;) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    const writes: Promise<unknown>[] = [];
    for (; done < due; done++) {
      const id = 1 + Math.floor(Math.random() * ADS);
      writes.push(replica.apply('churn', [{ adId: String(id), ad: ad(id, ++v) }], { 0: String(v) }));
    }
    await Promise.all(writes);
    await sleep(10);
  }
}

const RATE = Number(arg('--rate', '10000'));
const SECONDS = Number(arg('--seconds', '20'));
const CHANGES = arg('--changes', '0,0,10,100,1000').split(',').map(Number);
const dir = mkdtempSync(join(tmpdir(), 'adclick-replica-churn-'));
const replica = CatalogueReplica.open(dir);
try {
  for (let from = 1; from <= ADS; from += 50_000) {
    const batch: Array<[string, ReplicaAd]> = [];
    for (let id = from; id < Math.min(ADS + 1, from + 50_000); id++) batch.push([String(id), ad(id, 0)]);
    await replica.putMany(batch);
  }
  const zipf = new ZipfSampler(ADS);
  const ids = Array.from({ length: RATE * SECONDS }, () => String(zipf.next()));
  for (const perSecond of CHANGES) {
    const writer = fork(
      process.argv[1]!,
      ['--writer', '--dir', dir, '--per-second', String(perSecond), '--ads', String(ADS)],
      {
        execArgv: process.execArgv,
      },
    );
    await sleep(1000);
    const reads0 = replica.diskReads;
    let inGet = 0;
    let n = 0;
    const started = performance.now();
    while (n < ids.length) {
      const due = Math.min(ids.length, Math.floor(((performance.now() - started) / 1000) * RATE));
      const t = performance.now();
      for (; n < due; n++) replica.get(ids[n]!);
      inGet += performance.now() - t;
      await sleep(10);
    }
    writer.send('stop');
    await new Promise((r) => writer.once('exit', r));
    console.log(
      `${perSecond} changes/s: ${((inGet * 1000) / n).toFixed(2)} µs per read, ` +
        `${((100 * (replica.diskReads - reads0)) / n).toFixed(1)} % of reads from the B-tree (${n} reads)`,
    );
  }
} finally {
  await replica.close();
  rmSync(dir, { recursive: true, force: true });
}
