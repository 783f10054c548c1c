import { describe, expect, it } from 'vitest';
import { cpuRows, P99_BOUND_MS, socketKinds, summarize, type StepResult } from './system-report.js';

/** A 10,000/s step of 120 s that carried its rate, with no lag and probes seen after 500 ms. */
function step(p99Ms: number, overrides: Partial<StepResult> = {}): StepResult {
  const samples = Array.from({ length: 24 }, (_, i) => ({ t: i * 5000, speedLag: 100, archiverLag: 200 }));
  return {
    step: '10000/s',
    offered: 10_000,
    seconds: 120,
    wrk: {
      requests: 1_199_000,
      seconds: 120,
      p50_us: 3000,
      p99_us: p99Ms * 1000,
      max_us: p99Ms * 2000,
      errors: 0,
      c302: 1_199_000,
      other: 0,
    },
    rate: 9990,
    samples,
    after: samples.slice(0, 3),
    probes: Array.from({ length: 100 }, (_, i) => ({
      adId: String(i),
      sentAt: i * 500,
      at302: i * 500 + 2,
      seenAt: i * 500 + 500,
    })),
    cpu: {},
    cpuWindowS: 120,
    clicksInWindow: 1_199_000,
    machineBusyCores: 1.8,
    loadBefore: 4,
    loadAfter: 4,
    ...overrides,
  };
}

describe('summarize: a step sustained, and DESIGN p99 judged apart', () => {
  it('a step that carried its rate but missed the p99 is sustained, without the p99 met', () => {
    const s = summarize(step(803));
    expect(s.sustained).toBe(true);
    expect(s.p99Met).toBe(false);
  });

  it('meets the p99 at the bound and not above it', () => {
    expect(summarize(step(P99_BOUND_MS)).p99Met).toBe(true);
    expect(summarize(step(P99_BOUND_MS + 0.1)).p99Met).toBe(false);
  });

  it('a step short of its rate is not sustained whatever its p99', () => {
    const s = summarize(step(10, { rate: 9500 }));
    expect(s.sustained).toBe(false);
    expect(s.p99Met).toBe(true);
  });

  it('probes never seen (over 5 % of them) make the step not sustained', () => {
    const r = step(10);
    for (let i = 0; i < 6; i++) delete r.probes[i]!.seenAt;
    expect(summarize(r).sustained).toBe(false);
  });

  it("names wrk's socket errors by kind, only those that occurred, and nothing without errors", () => {
    const wrk = step(20).wrk;
    expect(socketKinds(wrk)).toBe('');
    expect(socketKinds({ ...wrk, errors: 158, connect: 0, read: 12, write: 0, timeout: 146 })).toBe(
      ': read 12, timeout 146',
    );
    // A summary from before the kinds were printed: the total only.
    expect(socketKinds({ ...wrk, errors: 3 })).toBe('');
  });
});

describe("cpuRows: the JVMs' JIT compilers beside the processes", () => {
  const cpu = { click: 60, kafka: 24, pinot: 18, 'wrk (load)': 30 };
  it("prints each JVM's compiler time per 1,000 clicks and in cores, outside the sums", () => {
    const rows = cpuRows([step(20, { cpu, jit: { kafka: 6, pinot: 12 } })], []);
    const byName = new Map(rows.map((r) => [r['process'], r]));
    // 1,199,000 clicks in 120 s: 12 s of Pinot's compilers is 0.010 s per 1,000 clicks, 0.1 cores.
    expect(byName.get("pinot's JIT compilers (in its row)")).toEqual({
      process: "pinot's JIT compilers (in its row)",
      '10000/s s/1k': 0.01,
      '10000/s cores': 0.1,
    });
    expect(byName.get("kafka's JIT compilers (in its row)")?.['10000/s s/1k']).toBe(0.005);
    // The sums hold the processes' own figures only (60 + 24 + 18 = 102 s: 0.085 per 1,000).
    expect(byName.get('all but the load generator')?.['10000/s s/1k']).toBe(0.085);
  });
  it('prints no compiler rows for a run without them, and a dash for a step without them', () => {
    expect(cpuRows([step(20, { cpu })], []).some((r) => String(r['process']).includes('JIT'))).toBe(false);
    const rows = cpuRows([step(20, { cpu }), step(20, { step: '12500/s', cpu, jit: { pinot: 1 } })], []);
    const pinot = rows.find((r) => r['process'] === "pinot's JIT compilers (in its row)");
    expect(pinot?.['10000/s s/1k']).toBe('-');
    expect(pinot?.['12500/s cores']).toBe(0.01);
  });
});
