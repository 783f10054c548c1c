// Where a compaction's time goes: each step is timed by a lap of one clock (the bench prints them).

/** Wall time of one step of a compaction (the bench prints where an hour's time goes). */
export interface PhaseTime {
  phase: string;
  seconds: number;
  /** Ran beside the PostgreSQL writes: its time is inside theirs, not added to them. */
  besideWrites?: boolean;
}

/** Times the steps of one compaction: each `lap` closes the step that ran since the previous one. */
export class PhaseClock {
  readonly phases: PhaseTime[] = [];
  private last: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.last = now();
  }

  lap(phase: string): void {
    const now = this.now();
    this.phases.push({ phase, seconds: (now - this.last) / 1000 });
    this.last = now;
  }
}

/** The steps of a compaction in report order: the main line, then what ran beside the writes. */
export const allPhases = (main: PhaseClock, beside: PhaseClock): PhaseTime[] => [
  ...main.phases,
  ...beside.phases.map((p) => ({ ...p, besideWrites: true })),
];
