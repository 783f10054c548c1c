import { describe, expect, it } from 'vitest';
import { manifestHash, rawFileKey, seenIndexKey } from './layout.js';

describe('batch S3 layout', () => {
  const hour = Date.UTC(2026, 10, 27, 9);
  it('names raw files by event hour, partition and offset range', () => {
    expect(rawFileKey('', hour, 3, '100', '199')).toBe(
      'raw/clicks/date=2026-11-27/hour=09/p3-100-199.parquet',
    );
    expect(rawFileKey('t1/', hour, 0, '0', '0')).toBe('t1/raw/clicks/date=2026-11-27/hour=09/p0-0-0.parquet');
  });
  it('names a seen index after the exact set of raw files, in any order', () => {
    const a = ['raw/x/p0-0-9.parquet', 'raw/x/p1-0-9.parquet'];
    expect(manifestHash(a)).toBe(manifestHash([...a].reverse()));
    expect(manifestHash([...a, 'raw/x/p0-10-19.parquet'])).not.toBe(manifestHash(a));
    expect(seenIndexKey('', hour, a)).toMatch(
      /^index\/seen\/date=2026-11-27\/hour=09\/[0-9a-f]{16}\.parquet$/,
    );
  });
});
