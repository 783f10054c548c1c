import { describe, expect, it } from 'vitest';
import {
  clickStagesBetween,
  formatStages,
  histogramDelta,
  histogramOf,
  quantileBound,
} from './click-stages.js';

/** A /metrics text with the click process's three histograms, from cumulative bucket counts. */
function metricsText(
  redirect: number[],
  redirectSum: number,
  redis: [number, number],
  kafka: [number, number],
) {
  const bounds = ['0.01', '0.025', '0.1', '+Inf'];
  const lines = [
    '# HELP adclick_click_redirect_seconds time to answer a click',
    '# TYPE adclick_click_redirect_seconds histogram',
    ...bounds.map((le, i) => `adclick_click_redirect_seconds_bucket{le="${le}"} ${redirect[i]}`),
    `adclick_click_redirect_seconds_sum ${redirectSum}`,
    `adclick_click_redirect_seconds_count ${redirect.at(-1)}`,
    `adclick_click_dedup_seconds_sum ${redis[0]}`,
    `adclick_click_dedup_seconds_count ${redis[1]}`,
    `adclick_click_produce_seconds_sum{destination="kafka"} ${kafka[0]}`,
    `adclick_click_produce_seconds_count{destination="kafka"} ${kafka[1]}`,
    `adclick_click_produce_seconds_sum{destination="spool"} 99`,
    `adclick_click_produce_seconds_count{destination="spool"} 1`,
  ];
  return lines.join('\n') + '\n';
}

describe('the click process stages of a step', () => {
  it('reads a histogram, summing label sets, with +Inf as the last bound', () => {
    const text = [
      'x_seconds_bucket{worker="1",le="0.5"} 2',
      'x_seconds_bucket{worker="2",le="0.5"} 3',
      'x_seconds_bucket{worker="1",le="+Inf"} 4',
      'x_seconds_bucket{worker="2",le="+Inf"} 6',
      'x_seconds_sum{worker="1"} 1.5',
      'x_seconds_sum{worker="2"} 2.5',
      'x_seconds_count{worker="1"} 4',
      'x_seconds_count{worker="2"} 6',
      'x_seconds_total_bucket{le="0.5"} 100',
    ].join('\n');
    expect(histogramOf(text, 'x_seconds')).toEqual({
      buckets: [
        [0.5, 5],
        [Infinity, 10],
      ],
      sum: 4,
      count: 10,
    });
    expect(histogramOf(text, 'y_seconds')).toBeUndefined();
  });

  it('takes the step as the difference of two readings, and bounds its quantiles by buckets', () => {
    const before = histogramOf(
      metricsText([10, 20, 30, 30], 1, [0, 0], [0, 0]),
      'adclick_click_redirect_seconds',
    );
    const after = histogramOf(
      metricsText([10, 70, 120, 130], 5, [0, 0], [0, 0]),
      'adclick_click_redirect_seconds',
    );
    const step = histogramDelta(after!, before);
    // 100 redirects in the step: none ≤ 10 ms, 50 ≤ 25 ms, 90 ≤ 100 ms, 100 in all.
    expect(step.count).toBe(100);
    expect(step.buckets.map(([, n]) => n)).toEqual([0, 50, 90, 100]);
    expect(quantileBound(step, 0.5)).toBe(0.025);
    expect(quantileBound(step, 0.9)).toBe(0.1);
    expect(quantileBound(step, 0.99)).toBe(Infinity);
    expect(quantileBound({ buckets: [], sum: 0, count: 0 }, 0.5)).toBeNaN();
  });

  it("gives the redirect's mean and bounds, and the mean waits for Redis and Kafka (not the spool)", () => {
    const before = metricsText([0, 0, 0, 0], 0, [0, 0], [0, 0]);
    const after = metricsText([100, 400, 990, 1000], 30, [18, 900], [12, 1000]);
    const s = clickStagesBetween(before, after)!;
    expect(s.redirects).toBe(1000);
    expect(s.meanMs).toBeCloseTo(30);
    expect(s.p50AtMostMs).toBe(100);
    expect(s.p99AtMostMs).toBe(100);
    expect(s.redisMeanMs).toBeCloseTo(20);
    expect(s.kafkaMeanMs).toBeCloseTo(12);
    expect(formatStages(s)).toBe('mean 30 ms, p50 ≤ 100, p99 ≤ 100; waits: Redis 20, Kafka 12');
  });

  it('says nothing of a step without redirects, or of a process that serves no such histogram', () => {
    const same = metricsText([1, 1, 1, 1], 0.001, [0, 0], [0, 0]);
    expect(clickStagesBetween(same, same)).toBeUndefined();
    expect(clickStagesBetween('', 'up 1\n')).toBeUndefined();
    expect(formatStages(undefined)).toBe('not served');
  });
});
