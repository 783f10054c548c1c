// foreignOffsets: whether a replica's applied offsets can be of the topic it is pointed at
// (catalogue-feed.ts; docs/catalogue-replica.md "Catch-up").
import { describe, expect, it } from 'vitest';
import { foreignOffsets } from './catalogue-feed.js';

const ends = [
  { partition: 0, high: '10' },
  { partition: 1, high: '0' },
  { partition: 2, high: '7' },
];

describe('foreignOffsets', () => {
  it('accepts offsets at or before each partition end, and partitions the replica never read', () => {
    expect(foreignOffsets({ 0: '10', 1: '0', 2: '3' }, ends)).toBeUndefined();
    expect(foreignOffsets({ 0: '0' }, ends)).toBeUndefined();
    expect(foreignOffsets({}, ends)).toBeUndefined();
  });

  it('names an offset past the end of its partition', () => {
    expect(foreignOffsets({ 0: '10', 2: '8' }, ends)).toBe(
      "partition 2 read up to offset 8, past the topic's end 7",
    );
    expect(foreignOffsets({ 1: '1' }, ends)).toMatch(/^partition 1 read up to offset 1/);
  });

  it('names a partition the topic does not have (the replica read a topic with more)', () => {
    expect(foreignOffsets({ 0: '1', 3: '0' }, ends)).toBe('partition 3 is not in the topic');
  });

  it('compares offsets as numbers, not strings', () => {
    expect(foreignOffsets({ 0: '9' }, [{ partition: 0, high: '10' }])).toBeUndefined();
    expect(foreignOffsets({ 0: '100' }, [{ partition: 0, high: '99' }])).toMatch(/past/);
  });
});
