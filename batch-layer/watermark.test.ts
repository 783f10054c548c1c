import { describe, expect, it } from 'vitest';
import { partitionWatermark } from './watermark.js';

describe('partitionWatermark', () => {
  const now = 1_000_000;
  it('an idle caught-up partition does not hold hours back', () => {
    expect(partitionWatermark({ caughtUp: true }, now, 60_000)).toBe(now - 60_000);
  });
  it('buffered (not yet uploaded) events pull the watermark back to their smallest ts', () => {
    expect(partitionWatermark({ caughtUp: false, bufferedMinTs: 5, lastMessageTime: now }, now, 10)).toBe(5);
  });
  it('a lagging partition trusts the produce time of the last consumed message', () => {
    expect(partitionWatermark({ caughtUp: false, lastMessageTime: 900_000 }, now, 1000)).toBe(899_000);
  });
  it('knows nothing about a lagging partition it has not consumed from', () => {
    expect(partitionWatermark({ caughtUp: false }, now, 1000)).toBeUndefined();
  });
});
