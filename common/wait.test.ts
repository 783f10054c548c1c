import { describe, expect, it } from 'vitest';
import { backoffDelay, sleep, waitFor, withDeadline } from './wait.js';

describe('waitFor', () => {
  it('resolves with the first truthy value of the check, polling until then', async () => {
    let calls = 0;
    const value = await waitFor('the third call', () => (++calls === 3 ? { n: calls } : undefined), 5_000, 1);
    expect(value).toEqual({ n: 3 });
    expect(calls).toBe(3);
  });

  it('treats a check that throws as not yet, and names it and the last error on timeout', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(
      waitFor(
        'a service to answer',
        async () => {
          calls++;
          throw new Error('connection refused');
        },
        120,
        10,
      ),
    ).rejects.toThrow(
      /timed out after 0\.12 s waiting for a service to answer \(last error: connection refused\)/,
    );
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
  });

  it('checks once even with a zero timeout', async () => {
    await expect(waitFor('now', () => 7, 0)).resolves.toBe(7);
    await expect(waitFor('never', () => false, 0)).rejects.toThrow(/waiting for never$/);
  });
});

describe('sleep', () => {
  it('waits about the time asked, and ends at once when its signal aborts', async () => {
    let t = Date.now();
    await sleep(40);
    expect(Date.now() - t).toBeGreaterThanOrEqual(35);
    const stop = new AbortController();
    t = Date.now();
    setTimeout(() => stop.abort(), 10);
    await sleep(10_000, stop.signal);
    expect(Date.now() - t).toBeLessThan(5_000);
  });
});

describe('backoffDelay', () => {
  it('starts at firstMs and doubles up to maxMs', () => {
    const delays = [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { firstMs: 500, maxMs: 5000 }));
    expect(delays).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(backoffDelay(0, { firstMs: 500, maxMs: 5000 })).toBe(500);
  });
});

describe('withDeadline', () => {
  it('gives the work its value or error when it settles in time', async () => {
    await expect(withDeadline(Promise.resolve(42), 1000, 'too slow')).resolves.toBe(42);
    await expect(withDeadline(Promise.reject(new Error('refused')), 1000, 'too slow')).rejects.toThrow(
      'refused',
    );
  });

  it('rejects with the message when the work is still pending at the deadline', async () => {
    const started = Date.now();
    await expect(
      withDeadline(new Promise(() => undefined), 30, 'Pinot: no answer within 30 ms'),
    ).rejects.toThrow(/^Pinot: no answer within 30 ms$/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('gives an answer already in when a late event loop reaches the deadline the value, not the rejection', async () => {
    // The loop is busy past the deadline (a loaded process). Meanwhile the answer came in: it is
    // handled in the loop's next turn, before its check phase (as a socket's data is, in the poll
    // phase). The deadline's timer fires in the same turn, first: it must not win.
    let answer = (_: string): void => undefined;
    const work = new Promise<string>((resolve) => (answer = resolve));
    const { raced } = await new Promise<{ raced: Promise<string> }>((outer) =>
      setImmediate(() => {
        const p = withDeadline(work, 20, 'no answer within 20 ms');
        const until = Date.now() + 60;
        while (Date.now() < until); // the busy loop
        setImmediate(() => answer('on time'));
        outer({ raced: p });
      }),
    );
    await expect(raced).resolves.toBe('on time');
  });
});
