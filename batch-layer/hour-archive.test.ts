import { describe, expect, it } from 'vitest';
import { hourScratchDir, hourSegment, localPaths, othersThan } from './hour-archive.js';
import { lookbackIndexPath, newestObject } from './seen-index.js';

const H = Date.UTC(2026, 0, 1, 13);

describe('hour archive paths', () => {
  it('names an hour without colons (a path segment on every file system)', () => {
    expect(hourSegment(H)).toBe('2026-01-01T130000Z');
  });

  it('gives an hour the same scratch folder on a retry, and another one per bucket or prefix', () => {
    const a = hourScratchDir('/w', { bucket: 'b', prefix: '' }, H);
    expect(hourScratchDir('/w', { bucket: 'b', prefix: '' }, H)).toBe(a);
    expect(hourScratchDir('/w', { bucket: 'b', prefix: 't1/' }, H)).not.toBe(a);
    expect(hourScratchDir('/w', { bucket: 'c', prefix: '' }, H)).not.toBe(a);
    expect(a).toMatch(/^\/w\/[0-9a-f]{12}\/2026-01-01T130000Z$/);
  });

  it('downloads each object under its base name', () => {
    expect(localPaths([{ key: 'raw/clicks/date=x/hour=13/p0-1-2.parquet', size: 1 }], '/d')).toEqual([
      '/d/p0-1-2.parquet',
    ]);
  });

  it('a replacement deletes every older object but the new key', () => {
    const older = [
      { key: 'i/a', size: 1 },
      { key: 'i/b', size: 1 },
    ];
    expect(othersThan(older, 'i/b')).toEqual(['i/a']);
    expect(othersThan(older, 'i/c')).toEqual(['i/a', 'i/b']);
  });
});

describe('seen index choice', () => {
  it('takes the most recently written index; one without a time counts as oldest', () => {
    expect(
      newestObject([
        { key: 'x', size: 1 },
        { key: 'y', size: 1, lastModified: 5 },
        { key: 'z', size: 1, lastModified: 3 },
      ]).key,
    ).toBe('y');
  });

  it('keeps the lookback indexes of different hours apart', () => {
    expect(lookbackIndexPath('/d', H, 'index/seen/date=2026-01-01/hour=13/abc.parquet')).toBe(
      '/d/lookback/2026-01-01T130000Z-abc.parquet',
    );
  });
});
