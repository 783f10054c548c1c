import { describe, expect, it } from 'vitest';
import { hourState } from './hour-state.js';

describe('hourState', () => {
  it('is open before any record, finalized once finalized', () => {
    expect(hourState(undefined, undefined)).toBe('open');
    expect(hourState({ finalizedAt: 10 }, undefined)).toBe('finalized');
  });

  it('a failure with no finalization makes the hour failed, or waiting for completeness', () => {
    expect(hourState(undefined, { failedAt: 5, kind: 'failed' })).toBe('failed');
    expect(hourState(undefined, { failedAt: 5, kind: 'waiting' })).toBe('waiting');
  });

  it('only a failure after the last finalization counts', () => {
    expect(hourState({ finalizedAt: 10 }, { failedAt: 5, kind: 'failed' })).toBe('finalized');
    expect(hourState({ finalizedAt: 10 }, { failedAt: 10, kind: 'waiting' })).toBe('finalized');
    expect(hourState({ finalizedAt: 10 }, { failedAt: 11, kind: 'failed' })).toBe('failed');
    expect(hourState({ finalizedAt: 10 }, { failedAt: 11, kind: 'waiting' })).toBe('waiting');
  });
});
