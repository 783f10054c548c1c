import { describe, expect, it } from 'vitest';
import { countFilesIn, rollupSelects } from './hour-count.js';
import { validInHour } from './seen-index.js';

const H = 3_600_000;
const flat = (s: string): string => s.replace(/\s+/g, ' ');

describe('hour counting queries', () => {
  it('takes the signed, unexpired clicks of [hour, hour + 1h) only', () => {
    expect(flat(validInHour(['/d/a.parquet'], H))).toBe(
      "select event_id, ts, ad_id, advertiser_id from read_parquet(['/d/a.parquet']) where status in ('valid', 'duplicate') and ts >= 3600000 and ts < 7200000",
    );
  });

  it('sums the ad rows from the minute cells and counts the advertiser rows from the clicks, in key order', () => {
    const q = rollupSelects('cells', 'counted', H);
    expect(flat(q.adMinute)).toBe(
      'select ad_id, make_timestamp((minute * 60000) * 1000), clicks from cells order by ad_id, minute',
    );
    expect(flat(q.adHour)).toBe(
      'select ad_id, make_timestamp((3600000) * 1000), sum(clicks) from cells group by ad_id order by ad_id',
    );
    expect(flat(q.advertiserMinute)).toContain(
      'from counted group by advertiser_id, minute order by advertiser_id, minute',
    );
    expect(flat(q.advertiserHour)).toBe(
      'select advertiser_id, make_timestamp((3600000) * 1000), count(*) from counted group by advertiser_id order by advertiser_id',
    );
  });

  it('puts the four CSVs of an hour in its folder', () => {
    expect(countFilesIn('/h')).toEqual({
      adMinute: '/h/ad-minute.csv',
      adHour: '/h/ad-hour.csv',
      advertiserMinute: '/h/advertiser-minute.csv',
      advertiserHour: '/h/advertiser-hour.csv',
    });
  });
});
