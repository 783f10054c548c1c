// The spool's lock: one owner per spool file.
//
// Ownership: `open` takes `<spool>.lock` (proper-lockfile: an atomic mkdir whose mtime the owner
// refreshes every LOCK_STALE_MS / 2). A second opener waits up to `lockWaitMs`, then gets a
// SpoolLockedError. A lock not refreshed for LOCK_STALE_MS belongs to a dead process (kill -9, power
// loss: a normal exit, even by an uncaught exception, removes it) and is taken over, so a crashed
// worker's restart waits at most that long. We chose an mtime heartbeat over a pid file because
// spool folders may be shared by containers (docker volumes) whose pids mean nothing to each other,
// and over flock(2) because Node has no flock without a native add-on. If the owner's event loop
// stalls past LOCK_STALE_MS and another process takes the lock over, this spool fails closed: every
// later operation rejects with SpoolLockLostError, so it can never write over the new owner's records.
import lockfile from 'proper-lockfile';
import { sleep } from '../common/wait.js';

/** A lock not refreshed for this long is a dead owner's. Every opener of one spool must agree on it. */
export const LOCK_STALE_MS = 10_000;
const LOCK_RETRY_MS = 250;

export interface SpoolLockOptions {
  /** How long to wait for a lock another process holds; 0 refuses at once. Default: long enough for a dead owner's lock to go stale. */
  lockWaitMs?: number;
  /** After how long without a refresh the lock is a dead owner's (default LOCK_STALE_MS; at least 2 s). Every opener of one spool must use the same. */
  lockStaleMs?: number;
}

/** Another process owns the spool (its lock is fresh). */
export class SpoolLockedError extends Error {
  constructor(
    readonly path: string,
    waitedMs: number,
  ) {
    super(
      `spool ${path} is locked by another process (${path}.lock is refreshed by its owner; waited ` +
        `${waitedMs} ms). A spool has one owner at a time: stop the other click process or drain, or ` +
        `wait for it; a dead owner's lock is taken over ${LOCK_STALE_MS / 1000} s after it died.`,
    );
    this.name = 'SpoolLockedError';
  }
}

/** This process no longer owns the spool: another one took its lock over. */
export class SpoolLockLostError extends Error {
  constructor(path: string, cause: Error) {
    super(
      `lost the lock of spool ${path} (${cause.message}): another process may own it now; this ` +
        `process no longer writes or replays it (restart it to take the spool back)`,
    );
    this.name = 'SpoolLockLostError';
  }
}

/** The folder proper-lockfile makes for a spool's lock (its default: `<spool>.lock`). */
export const spoolLockDir = (spoolPath: string): string => `${spoolPath}.lock`;

/** Takes the spool's lock, waiting up to opts.lockWaitMs for another owner to release it or go stale. */
export async function lockSpool(
  path: string,
  opts: SpoolLockOptions,
  onCompromised: (e: Error) => void,
): Promise<() => Promise<void>> {
  const stale = opts.lockStaleMs ?? LOCK_STALE_MS;
  const waitMs = opts.lockWaitMs ?? stale + 2000;
  const started = Date.now();
  for (;;) {
    try {
      return await lockfile.lock(path, {
        stale,
        realpath: false,
        retries: 0,
        onCompromised,
        lockfilePath: spoolLockDir(path),
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      const waited = Date.now() - started;
      if (waited >= waitMs) throw new SpoolLockedError(path, waited);
      await sleep(Math.min(LOCK_RETRY_MS, waitMs - waited));
    }
  }
}
