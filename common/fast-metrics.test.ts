import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastCounter, FastHistogram } from './fast-metrics.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A value on a bound, just past one, in between, and beyond the last bound, with their neighbours. */
function observations(seed: number, n: number): number[] {
  let x = seed;
  const random = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out: number[] = [0, ...BUCKETS, 3, 1e6];
  for (let i = 0; i < n; i++) {
    const r = random();
    out.push(r < 0.2 ? BUCKETS[Math.floor(random() * BUCKETS.length)]! : random() ** 3 * 4);
  }
  return out;
}

/** prom-client's Histogram and ours, each in a registry of its own, fed the same observations. */
function pair(labelNames: string[] = []) {
  const theirs = new Registry();
  const ours = new Registry();
  const opts = { name: 'adclick_test_seconds', help: 'a test histogram', buckets: BUCKETS, labelNames };
  return {
    theirs,
    ours,
    prom: new Histogram({ ...opts, registers: [theirs] }),
    fast: new FastHistogram({ ...opts, registers: [ours] }),
  };
}

describe('FastHistogram', () => {
  it("answers /metrics's text exactly as prom-client's Histogram does, without labels", async () => {
    const { theirs, ours, prom, fast } = pair();
    expect(await ours.metrics()).toBe(await theirs.metrics()); // zeros before the first observation
    for (const v of observations(7, 5000)) {
      prom.observe(v);
      fast.observe(v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toMatch(/adclick_test_seconds_count 5014\n/);
  });

  it('answers the same per label set, and its children are bound once', async () => {
    const { theirs, ours, prom, fast } = pair(['destination']);
    const values = observations(11, 3000);
    values.forEach((v, i) => {
      const d = i % 7 === 0 ? 'spool' : 'kafka';
      prom.labels(d).observe(v);
      fast.labels(d).observe(v);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(fast.labels('kafka')).toBe(fast.labels('kafka'));
    expect(() => fast.labels()).toThrow(/1 label value/);
  });

  it("sums over a cluster's workers as prom-client's histograms do", async () => {
    const theirs: object[] = [];
    const ours: object[] = [];
    for (const seed of [3, 5, 9]) {
      const p = pair(['destination']);
      for (const v of observations(seed, 1000)) {
        p.prom.labels('kafka').observe(v);
        p.fast.labels('kafka').observe(v);
      }
      theirs.push(await p.theirs.getMetricsAsJSON());
      ours.push(await p.ours.getMetricsAsJSON());
    }
    const text = (r: Registry) => r.metrics();
    expect(await text(AggregatorRegistry.aggregate(ours as never))).toBe(
      await text(AggregatorRegistry.aggregate(theirs as never)),
    );
  });

  it('refuses what prom-client refuses: a value that is not a number, buckets that do not ascend', () => {
    const { fast } = pair();
    expect(() => fast.observe(Number.NaN)).toThrow(TypeError);
    expect(() => new FastHistogram({ name: 'x', help: 'x', buckets: [1, 1] })).toThrow(/ascend/);
  });
});

describe('FastCounter', () => {
  const counters = (labelNames: string[] = []) => {
    const theirs = new Registry();
    const ours = new Registry();
    const opts = { name: 'adclick_test_total', help: 'a test counter', labelNames };
    return {
      theirs,
      ours,
      prom: new Counter({ ...opts, registers: [theirs] }),
      fast: new FastCounter({ ...opts, registers: [ours] }),
    };
  };

  it("answers /metrics's text exactly as prom-client's Counter does, with and without labels", async () => {
    const plain = counters();
    expect(await plain.ours.metrics()).toBe(await plain.theirs.metrics()); // 0 before the first inc
    for (const by of [1, 1, 2.5, 0, 7]) {
      plain.prom.inc(by);
      plain.fast.inc(by);
    }
    expect(await plain.ours.metrics()).toBe(await plain.theirs.metrics());
    expect(await plain.ours.metrics()).toMatch(/adclick_test_total 11.5\n/);

    const labelled = counters(['outcome', 'code']);
    const outcomes = ['valid', 'duplicate', 'bad_signature', 'expired'];
    for (let i = 0; i < 500; i++) {
      const o = outcomes[(i * 7) % 4]!;
      const c = String(300 + (i % 3));
      labelled.prom.labels(o, c).inc();
      labelled.fast.labels(o, c).inc();
    }
    expect(await labelled.ours.metrics()).toBe(await labelled.theirs.metrics());
    expect(labelled.fast.labels('valid', '300')).toBe(labelled.fast.labels('valid', '300'));
  });

  it("sums over a cluster's workers as prom-client's counters do", async () => {
    const theirs: object[] = [];
    const ours: object[] = [];
    for (const n of [3, 5, 9]) {
      const p = counters(['outcome']);
      p.prom.labels('valid').inc(n);
      p.fast.labels('valid').inc(n);
      theirs.push(await p.theirs.getMetricsAsJSON());
      ours.push(await p.ours.getMetricsAsJSON());
    }
    expect(await AggregatorRegistry.aggregate(ours as never).metrics()).toBe(
      await AggregatorRegistry.aggregate(theirs as never).metrics(),
    );
  });

  it('refuses to go down', () => {
    const { fast } = counters();
    expect(() => fast.inc(-1)).toThrow(/decrease/);
    expect(() => fast.inc(Number.NaN)).toThrow(/decrease/);
  });
});
