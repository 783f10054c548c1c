// The open minutes of one `clicks` partition, as a pure state machine (no I/O): it counts valid
// clicks per (adId, salt, minute), drops an impression id already seen in an open minute, and at
// each flush hands out what changed plus the checkpoint that lets a new owner rebuild it exactly.
//
// Definitions (all per partition, in log order):
// - watermark: the newest `ts` among valid events. A minute m is *open* while
//   m >= minuteOf(watermark) - openMinutes; once closed it never reopens (the watermark only grows).
// - An open minute keeps the impression ids of ALL its valid events (counted or not). A valid event
//   whose id is in any open minute is a duplicate: not counted. So the ids held after offset O are a
//   function of the log alone: the valid events before O whose minute is open at O.
// - A valid event of a closed minute is *late*: still counted, never deduped beyond the open ids.
//
// Counts leave as *parts*, so a restart never needs to know counts written before it:
// - on-time clicks: the cumulative count of (adId, salt, minute) since this state began at offset E,
//   part `e<E>`. Re-emitting a cumulative count is harmless under an upsert on the full key.
// - late clicks: the count within one flush batch starting at offset B, part `l<B>`.
// Each committed flush covers [previous checkpoint, nextOffset) of the log exactly once, and the
// parts of different states or batches never share a key, so the sum of all committed parts of a
// minute is exactly the number of counted events. Stores that add deltas (PostgreSQL) use `delta`.
//
// Rebuild: a new state starts at the committed checkpoint {nextOffset O, replayFrom S, watermark W}.
// S is the first offset of a valid event of a minute still open at O, so re-reading [S, O) with
// `add` (which then only records ids, counting nothing) restores exactly the ids an uninterrupted
// run would hold at O. Every decision after O is then the same as without the interruption.
import type { ClickEvent } from '../common/click-event.js';
import { MINUTE_MS, minuteOf } from '../common/time.js';

export interface Checkpoint {
  /** Next offset to count: every event before it is in committed counts. */
  nextOffset: number;
  /** Re-read from here (to nextOffset) to rebuild the open minutes' impression ids. */
  replayFrom: number;
  /** Newest valid event time (epoch ms), null before the first. */
  watermark: number | null;
}

/** One part of the count of (adId, salt, minute): a row of the minute_counts topic and of the stores. */
export interface MinuteCountPart {
  adId: string;
  /** The ad's advertiser (it never changes), so stores can key advertiser-wide reads by it. */
  advertiserId: string;
  salt: number;
  /** Minute start, epoch ms. */
  minute: number;
  /**
   * `e<offset>` for on-time cumulative counts, `l<offset>` for a batch's late clicks (a sink may
   * prefix it with its partition, speed-layer/kafka-sink.ts `countPart`).
   */
  part: string;
  /** The part's count: cumulative for `e`, the batch's count for `l`. */
  clicks: number;
}

/** A part changed by a flush. */
export interface CountChange extends MinuteCountPart {
  /** Clicks added to (adId, salt, minute) since the previous flush. */
  delta: number;
}

export interface Flush {
  changes: CountChange[];
  checkpoint: Checkpoint;
}

export type AddOutcome = 'counted' | 'late' | 'duplicate' | 'ignored' | 'replayed' | 'skipped';

interface OpenMinute {
  ids: Set<string>;
  /** Offset of this minute's first valid event: where a rebuild must start re-reading. */
  firstOffset: number;
  /** Cumulative on-time counts by `adId:salt`. */
  counts: Map<string, number>;
}

export class MinuteWindow {
  private readonly openMinutes: number;
  private readonly epochStart: number;
  private readonly replayUntil: number;
  private watermark: number | null;
  private readonly minutes = new Map<number, OpenMinute>();
  private dirty = new Map<string, CountChange>();
  private batchStart: number;
  /** Next offset not yet seen; events below it are skipped (redelivered after a seek). */
  private position: number;

  /** Starts at a committed checkpoint (or at `{nextOffset, replayFrom: nextOffset, watermark: null}`). */
  constructor(checkpoint: Checkpoint, opts: { openMinutes: number }) {
    if (checkpoint.replayFrom > checkpoint.nextOffset) throw new Error('replayFrom is after nextOffset');
    this.openMinutes = opts.openMinutes;
    this.epochStart = checkpoint.nextOffset;
    this.replayUntil = checkpoint.nextOffset;
    this.batchStart = checkpoint.nextOffset;
    this.watermark = checkpoint.watermark;
    this.position = checkpoint.replayFrom;
  }

  /** The offset the consumer must read from next. */
  get nextToRead(): number {
    return this.position;
  }

  /** True while events before the committed checkpoint are being re-read. */
  get replaying(): boolean {
    return this.position < this.replayUntil;
  }

  /** Number of impression ids held (all open minutes). */
  get heldIds(): number {
    let n = 0;
    for (const m of this.minutes.values()) n += m.ids.size;
    return n;
  }

  /** First open minute (epoch ms), or null before any valid event. */
  windowStart(): number | null {
    return this.watermark === null ? null : minuteOf(this.watermark) - this.openMinutes * MINUTE_MS;
  }

  /** Passes over a message that is not a click event (it still moves the position). */
  pass(offset: number): void {
    if (offset >= this.position) this.position = offset + 1;
  }

  /** Feeds the event at `offset` (offsets must be fed in increasing order). */
  add(event: ClickEvent, offset: number): AddOutcome {
    if (offset < this.position) return 'skipped';
    this.position = offset + 1;
    if (event.status !== 'valid') return 'ignored';
    const minute = minuteOf(event.ts);

    if (offset < this.replayUntil) {
      // Rebuild only: the checkpoint's watermark already covers these events.
      if (this.isOpen(minute)) this.openMinute(minute, offset).ids.add(event.eventId);
      return 'replayed';
    }

    if (this.watermark === null || event.ts > this.watermark) {
      this.watermark = event.ts;
      this.evictClosed();
    }
    const duplicate = this.seen(event.eventId);
    if (!this.isOpen(minute)) {
      if (duplicate) return 'duplicate';
      this.bump(event, minute, `l${this.batchStart}`, 1);
      return 'late';
    }
    const open = this.openMinute(minute, offset);
    open.ids.add(event.eventId);
    if (duplicate) return 'duplicate';
    const key = `${event.adId}:${event.salt}`;
    const cumulative = (open.counts.get(key) ?? 0) + 1;
    open.counts.set(key, cumulative);
    this.bump(event, minute, `e${this.epochStart}`, cumulative);
    return 'counted';
  }

  /**
   * Hands out the changes since the previous flush and the checkpoint after `nextOffset` (the offset
   * after the last event fed, or later when the log has gaps). The caller commits both atomically;
   * if that fails it must discard this state and rebuild from the last committed checkpoint.
   */
  flush(nextOffset: number = this.position): Flush {
    if (nextOffset < this.position)
      throw new Error(`flush at ${nextOffset} before position ${this.position}`);
    if (this.replaying) throw new Error('flush while the open window is still being rebuilt');
    this.position = nextOffset;
    const changes = [...this.dirty.values()];
    this.dirty = new Map();
    this.batchStart = nextOffset;
    let replayFrom = nextOffset;
    for (const m of this.minutes.values()) replayFrom = Math.min(replayFrom, m.firstOffset);
    return { changes, checkpoint: { nextOffset, replayFrom, watermark: this.watermark } };
  }

  /** Changes waiting for the next flush. */
  get pendingChanges(): number {
    return this.dirty.size;
  }

  private isOpen(minute: number): boolean {
    const start = this.windowStart();
    return start === null || minute >= start;
  }

  private seen(eventId: string): boolean {
    for (const m of this.minutes.values()) if (m.ids.has(eventId)) return true;
    return false;
  }

  private openMinute(minute: number, offset: number): OpenMinute {
    let m = this.minutes.get(minute);
    if (!m) {
      m = { ids: new Set(), firstOffset: offset, counts: new Map() };
      this.minutes.set(minute, m);
    }
    return m;
  }

  private evictClosed(): void {
    for (const minute of this.minutes.keys()) if (!this.isOpen(minute)) this.minutes.delete(minute);
  }

  /** Records a part's new count (`value`: cumulative for `e` parts, +1 for `l` parts). */
  private bump(event: ClickEvent, minute: number, part: string, value: number): void {
    const { adId, advertiserId, salt } = event;
    const key = `${adId}:${salt}:${minute}:${part}`;
    const change = this.dirty.get(key);
    if (change) {
      change.clicks = part.startsWith('e') ? value : change.clicks + value;
      change.delta += 1;
    } else {
      this.dirty.set(key, {
        adId,
        advertiserId,
        salt,
        minute,
        part,
        clicks: part.startsWith('e') ? value : 1,
        delta: 1,
      });
    }
  }
}
