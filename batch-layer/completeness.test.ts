import { describe, expect, it } from 'vitest';
import { archivedThrough, judgeHour, type HourEvidence, type ProcessReport } from './completeness.js';

const E = Date.UTC(2026, 10, 27, 11); // the hour's end
const MIN = 60_000;
const report = (processId: string, loggedBefore: number, silentMs = 1000, spoolDepth = 0): ProcessReport => ({
  processId,
  loggedBefore,
  silentMs,
  spoolDepth,
});
const evidence = (over: Partial<HourEvidence> = {}): HourEvidence => ({
  hourEnd: E,
  partitions: [0, 1],
  watermarks: new Map([
    [0, E + MIN],
    [1, E],
  ]),
  reports: [report('a', E + 5000)],
  silenceBoundMs: 15 * MIN,
  ...over,
});

describe('judgeHour', () => {
  it('ready when every partition is archived past the end and every live process logged past it', () => {
    expect(judgeHour(evidence())).toEqual({ ready: true, notWaitedFor: [] });
  });

  it('waits for a partition Kafka lists that the archive has never reported (a new partition)', () => {
    const j = judgeHour(evidence({ partitions: [0, 1, 2] }));
    expect(j).toMatchObject({ ready: false });
    expect(!j.ready && j.waitingFor).toMatch(/partition\(s\) 2/);
  });

  it('ignores a watermark row of a partition Kafka no longer lists', () => {
    const watermarks = new Map([
      [0, E],
      [1, E],
      [7, E - 10 * MIN],
    ]);
    expect(judgeHour(evidence({ watermarks })).ready).toBe(true);
  });

  it('waits for a live click process still holding a click of the hour (spooled or in flight)', () => {
    const j = judgeHour(evidence({ reports: [report('a', E + 1), report('b', E - 1, 1000, 30)] }));
    expect(j).toEqual({
      ready: false,
      waitingFor: expect.stringMatching(/b \(30 spooled\)/),
    });
  });

  it('does not wait for a process silent past the bound, and names it', () => {
    const j = judgeHour(evidence({ reports: [report('a', E + 1), report('gone', E - 1, 16 * MIN, 30)] }));
    expect(j).toEqual({ ready: true, notWaitedFor: ['gone'] });
  });
});

describe('archivedThrough', () => {
  it('needs every partition of the target, missing partitions counting as 0', () => {
    expect(archivedThrough({ '0': '10', '1': '5' }, { '0': '10', '1': '5' })).toBe(true);
    expect(archivedThrough({ '0': '10', '1': '4' }, { '0': '10', '1': '5' })).toBe(false);
    expect(archivedThrough({ '0': '10' }, { '0': '10', '1': '0' })).toBe(true);
    expect(archivedThrough({ '0': '10' }, { '0': '10', '1': '1' })).toBe(false);
  });
});
