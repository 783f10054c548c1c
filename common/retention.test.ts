import { describe, expect, it } from 'vitest';
import {
  nextPartitionStart,
  partitionExpired,
  partitionName,
  partitionStart,
  tiersOf,
  wantedPartitions,
} from './retention.js';

const t = (iso: string): number => Date.parse(iso);
const policy = { minuteDays: 7, hourDays: 92, dayYears: 3 };
const tiers = tiersOf(policy);

describe('retention tiers', () => {
  it('cuts partitions by day, month and year (UTC) and names them', () => {
    const at = t('2026-12-01T17:45:00Z');
    expect(partitionStart(at, 'day')).toBe(t('2026-12-01T00:00:00Z'));
    expect(partitionStart(at, 'month')).toBe(t('2026-12-01T00:00:00Z'));
    expect(partitionStart(at, 'year')).toBe(t('2026-01-01T00:00:00Z'));
    expect(nextPartitionStart(t('2026-12-01T00:00:00Z'), 'month')).toBe(t('2027-01-01T00:00:00Z'));
    expect(partitionName('click_counts_minute', t('2026-12-01T00:00:00Z'), 'day')).toBe(
      'click_counts_minute_p20261201',
    );
    expect(partitionName('click_counts_hour', t('2026-12-01T00:00:00Z'), 'month')).toBe(
      'click_counts_hour_p202612',
    );
    expect(partitionName('click_counts_day', t('2026-01-01T00:00:00Z'), 'year')).toBe(
      'click_counts_day_p2026',
    );
  });

  it('wants the partitions from the horizon to `ahead` past now', () => {
    const now = t('2026-12-01T17:45:00Z');
    const minutes = wantedPartitions(tiers.minute, now);
    expect(minutes[0]).toBe(t('2026-11-24T00:00:00Z')); // holds now − 7 days
    expect(minutes.at(-1)).toBe(t('2026-12-03T00:00:00Z')); // today + 2
    expect(minutes).toHaveLength(10);
    const hours = wantedPartitions(tiers.hour, now);
    expect(hours[0]).toBe(t('2026-08-01T00:00:00Z'));
    expect(hours.at(-1)).toBe(t('2027-01-01T00:00:00Z'));
    expect(wantedPartitions(tiers.day, now).at(-1)).toBe(t('2027-01-01T00:00:00Z'));
  });

  it('expires a partition only once all of it is older than the horizon (retention + one partition at most)', () => {
    const now = t('2026-12-01T17:45:00Z');
    expect(partitionExpired(tiers.minute, t('2026-11-23T00:00:00Z'), now)).toBe(true);
    expect(partitionExpired(tiers.minute, t('2026-11-24T00:00:00Z'), now)).toBe(false);
    expect(partitionExpired(tiers.hour, t('2026-07-01T00:00:00Z'), now)).toBe(true);
    expect(partitionExpired(tiers.hour, t('2026-08-01T00:00:00Z'), now)).toBe(false);
  });
});
