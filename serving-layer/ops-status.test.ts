// The hour states of the operators' status: final, failed (a failure after the last finalization),
// not final; only hours that ended.
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
      [t0 + H, { failedAt: t0 + 2.5 * H, reason: 'S3 down', workflowId: 'w1' }],
      [t0 + 2 * H, { failedAt: t0 + 3.1 * H, reason: 'not complete', workflowId: 'w2' }],
      [t0 + 3 * H, { failedAt: t0 + 4.1 * H, reason: 'PostgreSQL down', workflowId: 'w3' }],
    ]);
    const states = hourStates(t0, t0 + 5.5 * H, finalized, failures);
    expect(states.map((s) => [s.hour, s.state])).toEqual([
      [t0, 'final'],
      [t0 + H, 'failed'],
      [t0 + 2 * H, 'final'],
      [t0 + 3 * H, 'failed'],
      [t0 + 4 * H, 'not_final'],
    ]);
    expect(states[1]!.failure?.reason).toBe('S3 down');
    expect(states[1]!.revision).toBe(2);
    expect(states[2]!.failure).toBeUndefined();
  });

  it('starts at the hour holding `from`', () => {
    expect(hourStates(t0 + 0.5 * H, t0 + 2 * H, new Map(), new Map()).map((s) => s.hour)).toEqual([
      t0,
      t0 + H,
    ]);
  });
});
