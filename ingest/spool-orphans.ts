// Orphan spools: spool files of worker numbers the current run does not have (a larger earlier run,
// a removed worker). Worker 0 adopts each one (opens it with its own click log, which replays it
// into Kafka) and keeps trying until it can: a spool whose lock is held is tried again every
// `retryMs`, so one that another live process owns is adopted once that process lets it go, and
// one whose owner died (a kill -9 of worker 0 itself, whose replacement finds its old locks still
// fresh) once the lock goes stale and is taken over (LOCK_STALE_MS, spool.ts). The folder is scanned
// again at every try, so an orphan that appears later (a shared folder) is adopted too. An adopted
// spool's click log reports its depth in /metrics like any other (ingest/metrics.ts).
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Gauge } from 'prom-client';
import { registry } from '../common/metrics.js';
import { SpoolLockedError } from './spool.js';

/** Every running adopter of this process, read when the gauges are scraped. */
const adopters = new Set<OrphanSpools>();
const sumOf = (f: (o: OrphanSpools) => number): number => [...adopters].reduce((n, o) => n + f(o), 0);
function gauge(name: string, help: string, labelNames: string[], collect: (g: Gauge) => void): void {
  if (registry.getSingleMetric(name)) return;
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      collect(this);
    },
  });
}

/** What adopting a spool yields: its open click log (closed on shutdown). */
export interface AdoptedSpool {
  close(): Promise<void>;
}

export interface OrphanSpoolOptions {
  /** The spool folder (ADCLICK_SPOOL_DIR). */
  dir: string;
  /** Worker numbers this run has: `spool-<n>.log` with n ≥ count is an orphan. */
  count: number;
  /** Opens the spool's click log; rejects with SpoolLockedError while another process holds its lock. */
  open: (path: string, worker: number) => Promise<AdoptedSpool>;
  /** How often to try again (default 2000 ms). */
  retryMs?: number;
  log?: (message: string) => void;
}

/** The worker number of an orphan spool file name, or undefined for any other file. */
export function orphanWorker(file: string, count: number): number | undefined {
  const m = /^spool-(\d+)\.log$/.exec(file);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= count ? n : undefined;
}

export class OrphanSpools {
  private readonly adopted = new Map<string, AdoptedSpool>();
  /** Why each orphan not adopted yet is waiting (logged when it changes). */
  private readonly waiting = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly log: (message: string) => void;

  /** Bytes not yet replayed (by their marker) of each orphan not adopted yet. */
  private readonly waitingBytes = new Map<string, number>();

  constructor(private readonly opts: OrphanSpoolOptions) {
    this.log = opts.log ?? ((m) => console.log(m));
    // An adopted spool's backlog is in adclick_spool_depth/bytes (its click log); these show the rest.
    gauge(
      'adclick_spool_orphans',
      'Spool files of worker numbers this run does not have (worker 0 adopts and replays them), by state',
      ['state'],
      (g) => {
        g.set(
          { state: 'adopted' },
          sumOf((o) => o.adopted.size),
        );
        g.set(
          { state: 'waiting' },
          sumOf((o) => o.waiting.size),
        );
      },
    );
    gauge(
      'adclick_spool_orphan_waiting_bytes',
      'Bytes not yet replayed of orphan spools whose lock another (live or dead) process still holds',
      [],
      (g) => g.set(sumOf((o) => [...o.waitingBytes.values()].reduce((a, b) => a + b, 0))),
    );
  }

  /** Tries now, then every retryMs until closed. */
  start(): this {
    adopters.add(this);
    this.running = this.tryAdopt();
    this.timer = setInterval(() => {
      this.running = this.running.then(() => this.tryAdopt());
    }, this.opts.retryMs ?? 2000);
    this.timer.unref();
    return this;
  }

  /** Paths of the orphan spools adopted so far. */
  get adoptedPaths(): string[] {
    return [...this.adopted.keys()];
  }
  /** Paths of the orphan spools seen and not adopted yet. */
  get waitingPaths(): string[] {
    return [...this.waiting.keys()];
  }

  /** One pass: adopts every orphan spool in the folder whose lock it can take. */
  async tryAdopt(): Promise<void> {
    if (this.stopped) return;
    let files: string[];
    try {
      files = await readdir(this.opts.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // no spool folder yet: nothing left over
      return this.note(this.opts.dir, `cannot list the spool folder: ${(e as Error).message}`);
    }
    for (const file of files.sort()) {
      const worker = orphanWorker(file, this.opts.count);
      const path = join(this.opts.dir, file);
      if (worker === undefined || this.adopted.has(path) || this.stopped) continue;
      try {
        const spool = await this.opts.open(path, worker);
        if (this.stopped) {
          await spool.close();
          return;
        }
        this.adopted.set(path, spool);
        this.waiting.delete(path);
        this.waitingBytes.delete(path);
        this.log(`click worker 0: adopted ${path} (worker ${worker} of an earlier run); replaying it`);
      } catch (e) {
        this.waitingBytes.set(path, await backlogBytes(path));
        this.note(
          path,
          e instanceof SpoolLockedError
            ? `${path} is locked by another process (or by a dead one, until its lock goes stale); trying again every ${(this.opts.retryMs ?? 2000) / 1000} s`
            : `cannot open ${path} (trying again): ${(e as Error).message}`,
        );
      }
    }
  }

  /** Stops trying and closes every adopted spool's click log (what is left is replayed by the next run). */
  async close(): Promise<void> {
    this.stopped = true;
    adopters.delete(this);
    clearInterval(this.timer);
    await this.running.catch(() => undefined);
    await Promise.all([...this.adopted.values()].map((s) => s.close()));
  }

  private note(path: string, why: string): void {
    if (this.waiting.get(path) !== why) this.log(`click worker 0: ${why}`);
    this.waiting.set(path, why);
  }
}

/** A spool's bytes after its marker's committed offset, read without its lock (for the gauge only). */
async function backlogBytes(path: string): Promise<number> {
  try {
    const size = (await stat(path)).size;
    const marker = JSON.parse(await readFile(`${path}.marker`, 'utf8').catch(() => '{}')) as {
      offset?: unknown;
    };
    const offset = Number.isSafeInteger(marker.offset) ? (marker.offset as number) : 0;
    return Math.max(0, size - offset);
  } catch {
    return 0; // gone (drained by its owner) or a marker being replaced: the next try sees it again
  }
}
