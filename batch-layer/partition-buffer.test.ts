import { describe, expect, it } from 'vitest';
import type { RawClickRow } from './parquet.js';
import { commitLost, clampOffset, watermarkInputs } from './archive-watermarks.js';
import {
  minDefined,
  offsetAfter,
  putBack,
  rowsByHour,
  takeRows,
  type PartitionBuffer,
} from './partition-buffer.js';

const H = 3_600_000;
const row = (ts: number, offset: string): RawClickRow => ({
  event: { ts } as RawClickRow['event'],
  partition: 0,
  offset,
});
const buffer = (over: Partial<PartitionBuffer> = {}): PartitionBuffer => ({
  rows: [],
  openedAt: 0,
  uploading: 0,
  lock: Promise.resolve(),
  ...over,
});

describe('partition buffer', () => {
  it('a flush takes the rows and their oldest time, leaving an empty buffer for what comes next', () => {
    const b = buffer({ rows: [row(5, '1'), row(3, '2')], minTs: 3, lastOffset: '2' });
    expect(takeRows(b)).toEqual({ rows: [row(5, '1'), row(3, '2')], last: '2', minTs: 3 });
    expect(b.rows).toEqual([]);
    expect(b.minTs).toBeUndefined();
    expect(b.lastOffset).toBe('2');
  });

  it('a failed flush puts its rows back in front, and the oldest time with them', () => {
    const b = buffer({ rows: [row(9, '3')], minTs: 9 });
    putBack(b, [row(5, '1'), row(2, '2')]);
    expect(b.rows.map((r) => r.offset)).toEqual(['1', '2', '3']);
    expect(b.minTs).toBe(2);
  });

  it('one raw file per event hour', () => {
    const byHour = rowsByHour([row(H + 1, '1'), row(2 * H, '2'), row(H + 5, '3')]);
    expect([...byHour.keys()]).toEqual([H, 2 * H]);
    expect(byHour.get(H)!.map((r) => r.offset)).toEqual(['1', '3']);
  });

  it('minDefined ignores an undefined side', () => {
    expect(minDefined(undefined, 4)).toBe(4);
    expect(minDefined(3, undefined)).toBe(3);
    expect(minDefined(3, 4)).toBe(3);
    expect(minDefined(undefined, undefined)).toBeUndefined();
  });
});

describe('archive watermarks', () => {
  it('a commit is lost when the group is behind what this process committed, unless an upload runs', () => {
    expect(commitLost(buffer({ committedOffset: '9' }), 9n)).toBe(true);
    expect(commitLost(buffer({ committedOffset: '9' }), 10n)).toBe(false);
    expect(commitLost(buffer({ committedOffset: '9', uploading: 3 }), 0n)).toBe(false);
    expect(commitLost(buffer(), 0n)).toBe(false);
  });

  it('nothing committed counts as offset 0', () => {
    expect(clampOffset(undefined)).toBe(0n);
    expect(clampOffset(-1n)).toBe(0n);
    expect(clampOffset(7n)).toBe(7n);
  });

  it('rests on the oldest event in memory, uploading included; caught up only with nothing buffered', () => {
    expect(
      watermarkInputs(buffer({ rows: [row(1, '1')], minTs: 8, uploading: 2, uploadingMinTs: 5 }), 0n, 9n),
    ).toEqual({
      bufferedMinTs: 5,
      lastMessageTime: undefined,
      caughtUp: false,
    });
    expect(watermarkInputs(buffer({ lastMessageTime: 4 }), 9n, 9n)).toEqual({
      bufferedMinTs: undefined,
      lastMessageTime: 4,
      caughtUp: true,
    });
    expect(watermarkInputs(undefined, 8n, 9n)).toEqual({
      bufferedMinTs: undefined,
      lastMessageTime: undefined,
      caughtUp: false,
    });
  });
});

describe('offsetAfter', () => {
  it('orders Kafka offsets as numbers, past 2^53 too', () => {
    const offsets = [
      '0',
      '9',
      '10',
      '99',
      '100',
      '9007199254740992',
      '9007199254740993',
      '18446744073709551',
    ];
    for (const [i, a] of offsets.entries())
      for (const [j, b] of offsets.entries()) expect(offsetAfter(a, b), `${a} after ${b}`).toBe(i > j);
  });
});
