import { describe, expect, it } from 'vitest';
import { loggedBefore } from './progress-report.js';

describe('loggedBefore', () => {
  it('claims up to now less the margin when nothing is pending', () => {
    expect(loggedBefore(undefined, 10_000, 5000)).toBe(5000);
  });
  it('stops at the oldest click not yet in Kafka', () => {
    expect(loggedBefore(1234, 10_000, 5000)).toBe(1234);
    expect(loggedBefore(9000, 10_000, 5000)).toBe(5000);
  });
  it('an unknown spool (0) holds every hour back', () => {
    expect(loggedBefore(0, 10_000, 5000)).toBe(0);
  });
});
