// The hour states of the operators' status: final, failed or waiting (a record after the last
// finalization, by its kind), not final; only hours that ended.
import { describe, expect, it } from 'vitest';
import { hourStates } from './ops-status.js';

const H = 3_600_000;
const t0 = Date.UTC(2026, 0, 1);

describe('hourStates', () => {
  it('names each ended hour final, failed or not final, and leaves out the running hour', () => {
    const finalized = new Map([
      [t0, { finalizedAt: t0 + 1.1 * H, revision: 1 }],
      // Finalized, then its recount failed: failed (the sweep retries it).
      [t0 + H, { finalizedAt: t0 + 2.1 * H, revision: 2 }],
      // Failed once, finalized after: final.
      [t0 + 2 * H, { finalizedAt: t0 + 3.5 * H, revision: 1 }],
    ]);
    const failures = new Map([
      [t0 + H, { failedAt: t0 + 2.5 * H, reason: 'S3 down', workflowId: 'w1', kind: 'failed' as const }],
      [
        t0 + 2 * H,
        { failedAt: t0 + 3.1 * H, reason: 'not complete', workflowId: 'w2', kind: 'waiting' as const },
      ],
      [
        t0 + 3 * H,
        { failedAt: t0 + 4.1 * H, reason: 'PostgreSQL down', workflowId: 'w3', kind: 'failed' as const },
      ],
      // Waiting for completeness is not failing.
      [
        t0 + 4 * H,
        { failedAt: t0 + 5.1 * H, reason: 'the archiver', workflowId: 'w4', kind: 'waiting' as const },
      ],
    ]);
    const states = hourStates(t0, t0 + 6.5 * H, finalized, failures);
    expect(states.map((s) => [s.hour, s.state])).toEqual([
      [t0, 'final'],
      [t0 + H, 'failed'],
      [t0 + 2 * H, 'final'],
      [t0 + 3 * H, 'failed'],
      [t0 + 4 * H, 'waiting'],
      [t0 + 5 * H, 'not_final'],
    ]);
    expect(states[1]!.failure?.reason).toBe('S3 down');
    expect(states[1]!.revision).toBe(2);
    expect(states[2]!.failure).toBeUndefined();
    expect(states[4]!.failure?.reason).toBe('the archiver');
  });

  it('starts at the hour holding `from`', () => {
    expect(hourStates(t0 + 0.5 * H, t0 + 2 * H, new Map(), new Map()).map((s) => s.hour)).toEqual([
      t0,
      t0 + H,
    ]);
  });
});
