import { describe, expect, it } from 'vitest';
import { dayPlan, dayRowsAction, stagedName, swapStatements } from './count-tables.js';

describe('dayRowsAction', () => {
  it('leaves the day rows alone while an hour of the day is not finalized', () => {
    expect(dayRowsAction(0, false)).toBe('none');
    expect(dayRowsAction(22, false)).toBe('none');
    expect(dayRowsAction(22, true)).toBe('none');
  });

  it('writes them all when this run finalizes the last hour, updates them when it redoes one', () => {
    expect(dayRowsAction(23, false)).toBe('whole day');
    expect(dayRowsAction(23, true)).toBe('update');
  });

  it('counts the hours of a short or long day (the default is 24)', () => {
    expect(dayRowsAction(22, false, 23)).toBe('whole day');
    expect(dayRowsAction(23, false, 25)).toBe('none');
  });
});

describe('dayPlan', () => {
  it('without the hour tier nothing is rolled and nothing kept', () => {
    expect(dayPlan({ hourHeld: false, dayHeld: true, action: 'update', refinalized: true })).toEqual({
      keepPrevious: false,
      day: 'none',
    });
  });

  it('without the day tier the day rows stay, but a re-finalization still keeps the previous rows', () => {
    expect(dayPlan({ hourHeld: true, dayHeld: false, action: 'whole day', refinalized: false })).toEqual({
      keepPrevious: false,
      day: 'none',
    });
    expect(dayPlan({ hourHeld: true, dayHeld: false, action: 'update', refinalized: true })).toEqual({
      keepPrevious: true,
      day: 'none',
    });
  });

  it('keeps the previous rows for a day update or a new revision', () => {
    expect(dayPlan({ hourHeld: true, dayHeld: true, action: 'whole day', refinalized: false })).toEqual({
      keepPrevious: true,
      day: 'whole day',
    });
    expect(dayPlan({ hourHeld: true, dayHeld: true, action: 'none', refinalized: false })).toEqual({
      keepPrevious: false,
      day: 'none',
    });
    expect(dayPlan({ hourHeld: true, dayHeld: true, action: 'none', refinalized: true })).toEqual({
      keepPrevious: true,
      day: 'none',
    });
  });
});

describe('swapStatements', () => {
  it('detaches and drops the old hour table before the staged one takes its name, then attaches it', () => {
    const sql = swapStatements(
      { staged: stagedName('m_2026010113'), day: 'm_20260101', hour: 'm_2026010113' },
      new Date('2026-01-01T13:00:00Z'),
      new Date('2026-01-01T14:00:00Z'),
    ).map((s) => s.replace(/\s+/g, ' '));
    expect(sql).toEqual([
      'alter table m_20260101 detach partition m_2026010113',
      'drop table m_2026010113',
      'alter table m_2026010113_n rename to m_2026010113',
      'alter index m_2026010113_n_pkey rename to m_2026010113_pkey',
      'alter index m_2026010113_n_minute_idx rename to m_2026010113_minute_idx',
      "alter table m_20260101 attach partition m_2026010113 for values from ('2026-01-01T13:00:00.000Z') to ('2026-01-01T14:00:00.000Z')",
    ]);
  });
});
