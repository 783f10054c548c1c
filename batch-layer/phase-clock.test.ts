import { describe, expect, it } from 'vitest';
import { PhaseClock, allPhases } from './phase-clock.js';

describe('PhaseClock', () => {
  it('times each step from the end of the previous one', () => {
    const times = [1000, 1500, 4000];
    const clock = new PhaseClock(() => times.shift()!);
    clock.lap('list');
    clock.lap('download');
    expect(clock.phases).toEqual([
      { phase: 'list', seconds: 0.5 },
      { phase: 'download', seconds: 2.5 },
    ]);
  });

  it('reports the steps beside the writes after the main ones, marked', () => {
    const main = new PhaseClock(() => 0);
    main.lap('write');
    const beside = new PhaseClock(() => 0);
    beside.lap('seen index');
    expect(allPhases(main, beside)).toEqual([
      { phase: 'write', seconds: 0 },
      { phase: 'seen index', seconds: 0, besideWrites: true },
    ]);
  });
});
