import { describe, expect, it } from 'vitest';
import {
  lookbackSource,
  nextRevision,
  rawExpiryCutoff,
  refusal,
  staleHours,
  sweepFrom,
} from './decisions.js';

const H = 3_600_000;
const T = Date.UTC(2026, 10, 27, 10);
const iso = (t: number): string => new Date(t).toISOString();

describe('refusal', () => {
  it('refuses an hour before the raw cutoff, naming the cutoff', () => {
    expect(refusal({ hourStart: T - H, cutoff: T, listed: ['a'], recorded: ['a'], iso })).toMatch(
      `before the raw cutoff ${iso(T)}`,
    );
  });
  it('refuses when a file the archiver recorded is missing from the listing', () => {
    expect(refusal({ hourStart: T, cutoff: T, listed: ['a'], recorded: ['a', 'b'], iso })).toMatch(
      /1 raw file\(s\) .* missing from S3 \(b\)/,
    );
  });
  it('lets an hour at or after the cutoff with all its files, or with no cutoff yet, be finalized', () => {
    expect(refusal({ hourStart: T, cutoff: T, listed: ['a', 'b'], recorded: ['a'], iso })).toBeUndefined();
    expect(refusal({ hourStart: 0, cutoff: undefined, listed: [], recorded: [], iso })).toBeUndefined();
  });
});

describe('lookbackSource', () => {
  it('reads raw files inside the retention, the retained index past it, never a partial rebuild', () => {
    expect(lookbackSource({ hourStart: T, cutoff: T, rawFiles: 2, retainedIndex: true })).toBe('raw');
    expect(lookbackSource({ hourStart: T - H, cutoff: T, rawFiles: 1, retainedIndex: true })).toBe(
      'retained-index',
    );
    expect(lookbackSource({ hourStart: T - H, cutoff: T, rawFiles: 0, retainedIndex: true })).toBe(
      'retained-index',
    );
    expect(lookbackSource({ hourStart: T - H, cutoff: T, rawFiles: 1, retainedIndex: false })).toBe('none');
    expect(lookbackSource({ hourStart: T, cutoff: undefined, rawFiles: 0, retainedIndex: false })).toBe(
      'none',
    );
  });
});

describe('staleHours', () => {
  const base = { lookbackHours: 2, hourMs: H, from: 0, to: Infinity, limit: 10 };
  it('a late file of an earlier hour makes the later hours of its lookback stale, not the ones past it', () => {
    const finalized = [0, 1, 2, 3].map((i) => ({ hour: T + i * H, listedAt: 100, failing: false }));
    const stale = staleHours({ ...base, finalized, newestUpload: new Map([[T, 200]]) });
    expect(stale).toEqual([T, T + H, T + 2 * H]);
  });
  it('an upload before the listing changes nothing; failing hours come last; the range bounds the inputs', () => {
    const finalized = [
      { hour: T, listedAt: 100, failing: true },
      { hour: T + H, listedAt: 300, failing: false },
      { hour: T + 3 * H, listedAt: 100, failing: false },
    ];
    const newestUpload = new Map([
      [T, 200],
      [T + H, 250],
      [T + 3 * H, 200],
    ]);
    expect(staleHours({ ...base, finalized, newestUpload })).toEqual([T + 3 * H, T]);
    expect(staleHours({ ...base, finalized, newestUpload, to: T + H })).toEqual([T]);
    expect(staleHours({ ...base, finalized, newestUpload, exclude: new Set([T]) })).toEqual([T + 3 * H]);
  });
});

describe('rawExpiryCutoff and sweepFrom', () => {
  const now = T + 30 * 24 * H + 5;
  it('holds the cutoff back for an hour owed a finalization and its lookback, bounded, never backwards', () => {
    const f = {
      now,
      retentionHours: 30 * 24,
      lookbackHours: 24,
      hourMs: H,
      previous: undefined,
      maxHoldHours: 168,
    };
    expect(rawExpiryCutoff({ ...f, owed: [] })).toBe(T);
    expect(rawExpiryCutoff({ ...f, owed: [T + 2 * H] })).toBe(T + 2 * H - 24 * H);
    expect(rawExpiryCutoff({ ...f, owed: [T - 1000 * H] })).toBe(T - 168 * H);
    expect(rawExpiryCutoff({ ...f, owed: [T], previous: T + H })).toBe(T + H);
    expect(sweepFrom({ now, retentionHours: 30 * 24, hourMs: H, cutoff: T - 5 * H })).toBe(T - 5 * H);
    expect(sweepFrom({ now, retentionHours: 30 * 24, hourMs: H, cutoff: undefined })).toBe(T);
  });
});

describe('nextRevision', () => {
  it('a new revision exactly when a number changes', () => {
    expect(nextRevision(undefined, { validClicks: 0, events: 0 })).toEqual({ revision: 1, changed: true });
    const was = { revision: 3, validClicks: 5, events: 7 };
    expect(nextRevision(was, { validClicks: 5, events: 7 })).toEqual({ revision: 3, changed: false });
    expect(nextRevision(was, { validClicks: 4, events: 7 })).toEqual({ revision: 4, changed: true });
  });
});
