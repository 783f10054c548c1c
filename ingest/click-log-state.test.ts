// The click log's state machine (click-log-state.ts), checked on random runs of events (fast-check):
// every transition it makes is one of the allowed ones, and what the states promise holds on the way.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  accepting,
  batchRoute,
  DirectReturnGate,
  INITIAL_STATE,
  LIFECYCLE_TRANSITIONS,
  nextState,
  PHASE_TRANSITIONS,
  reportedMode,
  transitionAllowed,
  type ClickLogEvent,
  type ClickLogState,
  type Phase,
} from './click-log-state.js';

const events: ClickLogEvent[] = [
  'kafka-missed',
  'caught-up',
  'emptied',
  'not-emptied',
  'replay-stopped',
  'close',
  'closed',
];
const run = fc.array(fc.constantFrom(...events), { maxLength: 60 });

/** The states a run passes through, the initial one first. */
function walk(run: ClickLogEvent[]): ClickLogState[] {
  const states = [INITIAL_STATE];
  for (const e of run) states.push(nextState(states.at(-1)!, e));
  return states;
}

describe('click log state machine', () => {
  it('makes only allowed transitions, one change at a time', () => {
    fc.assert(
      fc.property(run, (r) => {
        const s = walk(r);
        for (let i = 1; i < s.length; i++) expect(transitionAllowed(s[i - 1]!, s[i]!)).toBe(true);
      }),
    );
  });

  it('keeps its invariants on every run', () => {
    fc.assert(
      fc.property(run, (r) => {
        const s = walk(r);
        s.forEach((state, i) => {
          const before = s.slice(0, i + 1);
          // Only an open log takes clicks; closing and closed never reopen.
          expect(accepting(state)).toBe(state.lifecycle === 'open');
          if (before.some((b) => b.lifecycle === 'closed'))
            expect(state).toEqual(before.find((b) => b.lifecycle === 'closed'));
          if (before.some((b) => b.lifecycle !== 'open')) expect(state.lifecycle).not.toBe('open');
          // Batches go to Kafka only when direct, are held only while the file is emptied, else spooled.
          expect(batchRoute(state)).toBe(
            state.phase === 'direct' ? 'kafka' : state.phase === 'emptying' ? 'held' : 'spool',
          );
          expect(reportedMode(state)).toBe(state.phase === 'direct' ? 'direct' : 'spooling');
          // Stalled is for good: a log whose replayer stopped never sends directly again.
          if (before.some((b) => b.phase === 'stalled')) expect(state.phase).toBe('stalled');
          // Back to direct only through emptying, i.e. after the file was emptied.
          if (i > 0 && state.phase === 'direct' && s[i - 1]!.phase !== 'direct') {
            expect(s[i - 1]!.phase).toBe('emptying');
            expect(r[i - 1]).toBe('emptied');
          }
        });
      }),
    );
  });

  it('reaches every state of the table from the initial one (none is dead code)', () => {
    const seen = new Set([JSON.stringify(INITIAL_STATE)]);
    const queue = [INITIAL_STATE];
    while (queue.length > 0) {
      const state = queue.shift()!;
      for (const e of events) {
        const next = JSON.stringify(nextState(state, e));
        if (!seen.has(next)) {
          seen.add(next);
          queue.push(JSON.parse(next) as ClickLogState);
        }
      }
    }
    for (const phase of Object.keys(PHASE_TRANSITIONS) as Phase[])
      for (const lifecycle of Object.keys(LIFECYCLE_TRANSITIONS))
        expect(seen, `${phase}/${lifecycle}`).toContain(JSON.stringify({ phase, lifecycle }));
  });

  it('refuses transitions the table does not list', () => {
    const direct = INITIAL_STATE;
    expect(transitionAllowed(direct, { ...direct, phase: 'emptying' })).toBe(false);
    expect(transitionAllowed({ ...direct, phase: 'stalled' }, direct)).toBe(false);
    expect(transitionAllowed(direct, { phase: 'spooling', lifecycle: 'closing' })).toBe(false);
    expect(transitionAllowed({ ...direct, lifecycle: 'closing' }, direct)).toBe(false);
    expect(
      transitionAllowed(
        { phase: 'spooling', lifecycle: 'closed' },
        { phase: 'emptying', lifecycle: 'closed' },
      ),
    ).toBe(false);
    expect(transitionAllowed(direct, { ...direct, phase: 'spooling' })).toBe(true);
  });
});

describe('DirectReturnGate (the hysteresis of the return to direct sends)', () => {
  const gate = (): DirectReturnGate =>
    new DirectReturnGate({ slowMs: 150, baseCalmMs: 1000, maxCalmMs: 30_000, flapWindowMs: 60_000 });

  it('a fresh log returns at once (records an earlier run left are no sign of a slow Kafka)', () => {
    expect(gate().mayReturn(0)).toBe(true);
  });

  it('after a miss, waits until Kafka has answered promptly for the calm period', () => {
    const g = gate();
    g.missed(10_000);
    g.sent(10_200, 40); // prompt
    expect(g.mayReturn(10_900)).toBe(false);
    expect(g.waitMs(10_900)).toBe(100);
    expect(g.mayReturn(11_000)).toBe(true);
  });

  it('a slow Kafka (every replay send past half the deadline) keeps the log on the spool', () => {
    const g = gate();
    g.missed(0);
    for (let t = 500; t <= 60_000; t += 500) {
      g.sent(t, 520); // a 500 ms latency toxic
      expect(g.mayReturn(t), `at ${t} ms`).toBe(false);
    }
    expect(g.mayReturn(61_000)).toBe(true); // calm since the last slow send
  });

  it('doubles the calm period on each flap, up to the bound, and sets it back after a return that held', () => {
    const g = gate();
    let t = 0;
    const seen: number[] = [];
    for (let flap = 0; flap < 8; flap++) {
      g.missed(t);
      seen.push(g.calmMs);
      t += g.calmMs;
      expect(g.mayReturn(t)).toBe(true);
      g.returned(t);
      t += 100; // the first direct batch misses again: a flap
    }
    expect(seen).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    t += 60_000; // this return held past the flap window
    g.missed(t);
    expect(g.calmMs).toBe(1000);
  });

  it('a failed replay send is trouble like a slow one', () => {
    const g = gate();
    g.missed(0);
    g.sent(5_000, Number.POSITIVE_INFINITY);
    expect(g.mayReturn(5_500)).toBe(false);
    expect(g.mayReturn(6_000)).toBe(true);
  });
});
