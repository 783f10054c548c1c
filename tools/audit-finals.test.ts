// The audit's decisions without I/O: which hours can be recounted, and what counts as a difference.
import { describe, expect, it } from 'vitest';
import {
  compareHour,
  firstAuditableHour,
  formatReport,
  type FinalHour,
  type HourCounts,
} from './audit-finals.js';

const H = 3_600_000;
const hour = Date.UTC(2026, 10, 27, 10);
const counts = (
  ads: Record<string, number>,
  advertisers: Record<string, number>,
  events: number,
): HourCounts => ({
  clicks: Object.values(ads).reduce((a, b) => a + b, 0),
  events,
  ads: new Map(Object.entries(ads)),
  advertisers: new Map(Object.entries(advertisers)),
});
const final = (c: HourCounts, revision = 1): FinalHour => ({ ...c, revision });

describe('firstAuditableHour', () => {
  it('is the raw cutoff (the hour of now less the retention) plus the lookback hours', () => {
    const now = Date.UTC(2026, 11, 31, 12, 34, 56);
    // Raw files before 2026-12-01T12:00Z are gone; an hour needs the 24 hours before it too.
    expect(firstAuditableHour(now, 30, 24)).toBe(Date.UTC(2026, 11, 2, 12));
  });
});

describe('compareHour', () => {
  const recount = counts({ '1': 5, '2': 3 }, { '10': 8 }, 11);

  it('is ok when the finals equal the recount', () => {
    const a = compareHour(hour, final(counts({ '1': 5, '2': 3 }, { '10': 8 }, 11)), recount, true);
    expect(a.status).toBe('ok');
    expect(a.differences).toEqual([]);
  });

  it('names every ad and advertiser that differs, the totals, and ad rows that do not sum to the total', () => {
    const f = final({
      clicks: 8,
      events: 12,
      ads: new Map([
        ['1', 6],
        ['3', 2],
      ]),
      advertisers: new Map([['10', 8]]),
    });
    const a = compareHour(hour, f, recount, true);
    expect(a.status).toBe('different');
    expect(a.differences).toEqual([
      'events: final 12, recount 11',
      'ad 2: final 0, recount 3',
      'ad 3: final 2, recount 0',
      'ad 1: final 6, recount 5',
    ]);
    const b = compareHour(hour, final({ ...recount, clicks: 9 }), recount, true);
    expect(b.differences).toEqual([
      'valid clicks: final 9, recount 8',
      "the hour's ad rows sum to 8, its finalized total is 9",
    ]);
  });

  it('a final hour with clicks that the archive does not hold differs (no recount is a recount of zero)', () => {
    const a = compareHour(hour, final(counts({ '1': 1 }, { '10': 1 }, 1)), undefined, true);
    expect(a.status).toBe('different');
    expect(a.differences).toContain('valid clicks: final 1, recount 0');
  });

  it('an hour never finalized is open, and one past the raw retention is not auditable, whatever the numbers', () => {
    expect(compareHour(hour, undefined, recount, true).status).toBe('open');
    expect(compareHour(hour, final(counts({ '1': 99 }, {}, 0)), undefined, false)).toMatchObject({
      status: 'not auditable',
      differences: [],
    });
  });
});

describe('formatReport', () => {
  it('prints one row per hour, the differences of each differing hour, and a summary', () => {
    const ok = compareHour(
      hour,
      final(counts({ '1': 2 }, { '10': 2 }, 2), 3),
      counts({ '1': 2 }, { '10': 2 }, 2),
      true,
    );
    const bad = compareHour(
      hour + H,
      final(counts({ '1': 4 }, { '10': 4 }, 4)),
      counts({ '1': 3 }, { '10': 3 }, 4),
      true,
    );
    const text = formatReport([ok, bad, compareHour(hour + 2 * H, undefined, undefined, false)], hour);
    expect(text).toMatch(/^2026-11-27T10:00:00Z\s+ok\s+3\s+2\s+2\s+2\s+2$/m);
    expect(text).toMatch(/^2026-11-27T11:00:00Z\s+different\s+1\s+4\s+3\s+4\s+4$/m);
    expect(text).toMatch(/^2026-11-27T12:00:00Z\s+not auditable$/m);
    expect(text).toContain(
      '2026-11-27T11:00:00Z differs:\n  valid clicks: final 4, recount 3\n  ad 1: final 4, recount 3',
    );
    expect(text).toContain('3 hours: 1 ok, 1 different, 0 open (never finalized), 1 not auditable');
  });
});
