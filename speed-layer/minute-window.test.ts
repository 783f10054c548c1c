import { describe, expect, it } from 'vitest';
import type { ClickEvent } from '../common/click-event.js';
import { MINUTE_MS } from '../common/time.js';
import { MinuteWindow, type Checkpoint, type CountChange } from './minute-window.js';
import { mulberry32 } from '../common/seeded-random.js';

const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
const fresh = (nextOffset = 0): Checkpoint => ({ nextOffset, replayFrom: nextOffset, watermark: null });

function click(
  eventId: string,
  ts: number,
  adId = '7',
  salt = 0,
  status: ClickEvent['status'] = 'valid',
): ClickEvent {
  return { v: 1, eventId, adId, advertiserId: '1', ts, status, salt };
}

/** Sums committed changes the way a store does: deltas per (ad, salt, minute). */
function applyDeltas(into: Map<string, number>, changes: CountChange[]): void {
  for (const c of changes) {
    const k = `${c.adId}:${c.salt}:${c.minute}`;
    into.set(k, (into.get(k) ?? 0) + c.delta);
  }
}

/** Upserts parts by their full key and sums them per (ad, salt, minute), the way Pinot reads. */
function applyParts(into: Map<string, CountChange>, changes: CountChange[]): Map<string, number> {
  for (const c of changes) into.set(`${c.adId}:${c.salt}:${c.minute}:${c.part}`, c);
  const sums = new Map<string, number>();
  for (const c of into.values()) {
    const k = `${c.adId}:${c.salt}:${c.minute}`;
    sums.set(k, (sums.get(k) ?? 0) + c.clicks);
  }
  return sums;
}

describe('MinuteWindow', () => {
  it('counts valid clicks per ad, salt and minute and ignores the other statuses', () => {
    const w = new MinuteWindow(fresh(), { openMinutes: 5 });
    expect(w.add(click('a', T0 + 1000), 0)).toBe('counted');
    expect(w.add(click('b', T0 + 2000), 1)).toBe('counted');
    expect(w.add(click('c', T0 + MINUTE_MS + 5), 2)).toBe('counted');
    expect(w.add(click('d', T0 + 3000, '7', 1), 3)).toBe('counted');
    expect(w.add(click('e', T0 + 4000, '7', 0, 'expired'), 4)).toBe('ignored');
    expect(w.add(click('f', T0 + 4000, '7', 0, 'bad_signature'), 5)).toBe('ignored');
    const { changes, checkpoint } = w.flush();
    const byKey = Object.fromEntries(changes.map((c) => [`${c.salt}:${c.minute - T0}`, c.clicks]));
    expect(byKey).toEqual({ [`0:0`]: 2, [`0:${MINUTE_MS}`]: 1, [`1:0`]: 1 });
    expect(changes.every((c) => c.part === 'e0')).toBe(true);
    expect(checkpoint).toEqual({ nextOffset: 6, replayFrom: 0, watermark: T0 + MINUTE_MS + 5 });
  });

  it('emits cumulative counts of changed keys only, and deltas since the previous flush', () => {
    const w = new MinuteWindow(fresh(), { openMinutes: 5 });
    w.add(click('a', T0), 0);
    w.add(click('b', T0, '8'), 1);
    w.flush();
    w.add(click('c', T0), 2);
    const { changes } = w.flush();
    expect(changes).toEqual([
      { adId: '7', advertiserId: '1', salt: 0, minute: T0, part: 'e0', clicks: 2, delta: 1 },
    ]);
    expect(w.flush().changes).toEqual([]);
  });

  it('drops a repeated impression id within the open window, also across minutes', () => {
    const w = new MinuteWindow(fresh(), { openMinutes: 5 });
    expect(w.add(click('imp', T0), 0)).toBe('counted');
    expect(w.add(click('imp', T0 + 10), 1)).toBe('duplicate');
    expect(w.add(click('imp', T0 + 3 * MINUTE_MS), 2)).toBe('duplicate');
    // A duplicate-status event is not counted and does not make the id seen.
    expect(w.add(click('x', T0, '7', 0, 'duplicate'), 3)).toBe('ignored');
    expect(w.add(click('x', T0), 4)).toBe('counted');
    const total = w.flush().changes.reduce((s, c) => s + c.delta, 0);
    expect(total).toBe(2);
  });

  it('evicts minutes that fall out of the window and counts their stragglers as late parts', () => {
    const w = new MinuteWindow(fresh(100), { openMinutes: 2 });
    w.add(click('a', T0), 100);
    w.add(click('b', T0 + 3 * MINUTE_MS), 101); // window now starts at T0 + 1 min
    expect(w.windowStart()).toBe(T0 + MINUTE_MS);
    expect(w.heldIds).toBe(1);
    expect(w.add(click('c', T0 + 5), 102)).toBe('late');
    expect(w.add(click('d', T0 + 6), 103)).toBe('late');
    // The evicted minute's ids are gone: its impression is no longer deduped here (Redis does).
    expect(w.add(click('a', T0 + 7), 104)).toBe('late');
    const first = w.flush();
    const late = first.changes.filter((c) => c.part.startsWith('l'));
    expect(late).toEqual([
      { adId: '7', advertiserId: '1', salt: 0, minute: T0, part: 'l100', clicks: 3, delta: 3 },
    ]);
    expect(w.add(click('e', T0 + 8), 105)).toBe('late');
    const second = w.flush();
    expect(second.changes).toEqual([
      { adId: '7', advertiserId: '1', salt: 0, minute: T0, part: 'l105', clicks: 1, delta: 1 },
    ]);
  });

  it('drops a late event whose impression id is held by an open minute', () => {
    const w = new MinuteWindow(fresh(), { openMinutes: 1 });
    w.add(click('imp', T0 + 5 * MINUTE_MS), 0);
    expect(w.add(click('imp', T0), 1)).toBe('duplicate');
  });

  it('keeps on-time and late parts of one minute apart even within one batch', () => {
    const w = new MinuteWindow(fresh(0), { openMinutes: 1 });
    w.add(click('a', T0), 0);
    w.add(click('b', T0 + 2 * MINUTE_MS), 1);
    w.add(click('c', T0), 2);
    const parts = new Map<string, CountChange>();
    const sums = applyParts(parts, w.flush().changes);
    expect(sums.get(`7:0:${T0}`)).toBe(2);
    expect([...parts.keys()].sort()).toEqual(
      [`7:0:${T0 + 2 * MINUTE_MS}:e0`, `7:0:${T0}:e0`, `7:0:${T0}:l0`].sort(),
    );
  });

  it('bounds memory: ids are held only for open minutes', () => {
    const w = new MinuteWindow(fresh(), { openMinutes: 5 });
    let offset = 0;
    for (let minute = 0; minute < 60; minute++) {
      for (let i = 0; i < 100; i++) w.add(click(`${minute}-${i}`, T0 + minute * MINUTE_MS + i), offset++);
    }
    expect(w.heldIds).toBe(600); // 6 open minutes (the newest and the 5 behind it) of 100 ids
  });

  it('skips redelivered offsets and reports where to read next', () => {
    const w = new MinuteWindow(fresh(10), { openMinutes: 5 });
    expect(w.add(click('a', T0), 9)).toBe('skipped');
    expect(w.add(click('a', T0), 10)).toBe('counted');
    expect(w.add(click('a2', T0), 10)).toBe('skipped');
    expect(w.nextToRead).toBe(11);
  });

  it('refuses a checkpoint whose replay start is after its next offset', () => {
    expect(
      () => new MinuteWindow({ nextOffset: 1, replayFrom: 2, watermark: null }, { openMinutes: 5 }),
    ).toThrow();
  });

  // The property the exactly-once design rests on: crash anywhere, rebuild from the last committed
  // checkpoint by re-reading [replayFrom, nextOffset), and the committed totals equal a run with no
  // crash — for both ways of storing (delta adds and upserted parts).
  it('a rebuilt state gives exactly the counts of an uninterrupted run, wherever it restarts', () => {
    const log: ClickEvent[] = [];
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 3000; i++) {
      // Time moves forward with jitter, some events arrive minutes late, ids repeat sometimes.
      const base = T0 + i * 400;
      const ts =
        rand() < 0.05 ? base - (3 + Math.floor(rand() * 10)) * MINUTE_MS : base + Math.floor(rand() * 5000);
      const eventId = rand() < 0.1 ? `imp-${Math.floor(rand() * i)}` : `imp-${i}`;
      const status = rand() < 0.05 ? 'expired' : 'valid';
      log.push(click(eventId, ts, String(1 + Math.floor(rand() * 3)), Math.floor(rand() * 2), status));
    }

    function run(crashes: number[]): { deltas: Map<string, number>; parts: Map<string, number> } {
      const deltas = new Map<string, number>();
      const partStore = new Map<string, CountChange>();
      let committed: Checkpoint = fresh(0);
      let w = new MinuteWindow(committed, { openMinutes: 3 });
      let sinceFlush = 0;
      for (let offset = 0; offset < log.length;) {
        if (crashes.length > 0 && offset === crashes[0]) {
          crashes.shift();
          w = new MinuteWindow(committed, { openMinutes: 3 }); // uncommitted work is lost
          offset = w.nextToRead;
          sinceFlush = 0;
          continue;
        }
        w.add(log[offset]!, offset);
        offset++;
        if (++sinceFlush === 37 && !w.replaying) {
          const f = w.flush();
          applyDeltas(deltas, f.changes);
          applyParts(partStore, f.changes);
          committed = f.checkpoint;
          sinceFlush = 0;
        }
      }
      const f = w.flush();
      applyDeltas(deltas, f.changes);
      return { deltas, parts: applyParts(partStore, f.changes) };
    }

    const clean = run([]);
    const crashed = run([100, 101, 555, 1200, 1201, 1999, 2500, 2990]);
    expect(crashed.deltas).toEqual(clean.deltas);
    expect(crashed.parts).toEqual(clean.deltas);
    expect(clean.parts).toEqual(clean.deltas);
    // And the counts are right: one per distinct valid impression per the window rule, so at most
    // the number of distinct valid ids plus those whose first click left the window.
    const total = [...clean.deltas.values()].reduce((s, n) => s + n, 0);
    const validIds = new Set(log.filter((e) => e.status === 'valid').map((e) => e.eventId));
    expect(total).toBeGreaterThanOrEqual(validIds.size);
    expect(total).toBeLessThan(log.filter((e) => e.status === 'valid').length);
  });

  // The window rule of the module's header, decided from scratch for every event (every valid event
  // fed so far, no index), against the window over seeded streams whose times jitter across minute
  // boundaries both ways and whose ids repeat within and across minutes.
  it('decides every event as the window rule states, over seeded streams', () => {
    const OPEN = 3;
    for (let seed = 1; seed <= 12; seed++) {
      const rand = mulberry32(seed);
      const w = new MinuteWindow(fresh(0), { openMinutes: OPEN });
      const fed: Array<{ id: string; minute: number }> = [];
      const expected = new Map<string, number>();
      const counted = new Map<string, number>();
      let watermark: number | null = null;
      for (let offset = 0; offset < 2500; offset++) {
        const base = T0 + offset * 500;
        const r = rand();
        const ts =
          r < 0.06
            ? base - (OPEN + 1 + Math.floor(rand() * 4)) * MINUTE_MS // late
            : base + Math.floor((rand() - 0.5) * 3 * MINUTE_MS); // ±1.5 minutes of jitter
        const id =
          rand() < 0.25 ? `imp-${Math.floor(rand() * 60) + Math.max(0, offset - 400)}` : `imp-${offset}`;
        const status = rand() < 0.05 ? 'expired' : 'valid';
        const e = click(id, ts, String(1 + Math.floor(rand() * 3)), Math.floor(rand() * 2), status);

        let want: string;
        const minute = ts - (ts % MINUTE_MS);
        if (status !== 'valid') want = 'ignored';
        else {
          watermark = watermark === null ? ts : Math.max(watermark, ts);
          const start = watermark - (watermark % MINUTE_MS) - OPEN * MINUTE_MS;
          const held = fed.some((f) => f.id === id && f.minute >= start);
          if (minute >= start) fed.push({ id, minute });
          want = held ? 'duplicate' : minute >= start ? 'counted' : 'late';
          if (!held)
            expected.set(
              `${e.adId}:${e.salt}:${minute}`,
              (expected.get(`${e.adId}:${e.salt}:${minute}`) ?? 0) + 1,
            );
        }
        expect(w.add(e, offset), `seed ${seed}, offset ${offset}`).toBe(want);
        if (offset % 41 === 40) applyDeltas(counted, w.flush().changes);
      }
      applyDeltas(counted, w.flush().changes);
      expect(counted, `seed ${seed}`).toEqual(expected);
    }
  });
});
