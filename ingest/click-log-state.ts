// The click log's states (click-log.ts) and the transitions allowed between them. Pure, no I/O: the
// click log feeds what happens into `nextState` and acts on the state it gets back.
//
//   direct   ── a batch missed its deadline or its send failed, or an earlier run left records ──► spooling
//   spooling ── the replayer has sent every spooled record ──► emptying
//   emptying ── the spool file is emptied ──► direct
//   emptying ── a batch was spooled meanwhile, or emptying the file failed ──► spooling
//   spooling, emptying ── the replayer stopped (another process took the spool's lock) ──► stalled
// and, beside the phase: open ── close() ──► closing ── flushed and disconnected ──► closed.
//
// direct: each batch goes to Kafka, one per idle producer lane. spooling: every batch is appended to
// the spool (so events reach Kafka in the order they were spooled) while the replayer sends the spool.
// emptying: batches wait in the buffer while the replayer empties the file, so no event can slip into
// a spool that nobody replays. stalled: no replayer (this process no longer owns the spool); batches
// still go to the spool, which refuses them, so their clicks get an error until a restart. closing:
// no new click is taken and the buffered ones are logged where the phase says; closed: final.

export type Phase = 'direct' | 'spooling' | 'emptying' | 'stalled';
export type Lifecycle = 'open' | 'closing' | 'closed';

export interface ClickLogState {
  readonly phase: Phase;
  readonly lifecycle: Lifecycle;
}

/** What the click log tells its state machine. */
export type ClickLogEvent =
  /** A batch missed its deadline or its send failed; or the spool holds records of an earlier run. */
  | 'kafka-missed'
  /** The replayer has sent every spooled record. */
  | 'caught-up'
  /** The replayer emptied the spool file. */
  | 'emptied'
  /** The file was not emptied: a batch was spooled meanwhile, or emptying it failed. */
  | 'not-emptied'
  /** The replayer stopped for good (the spool's lock was lost, or a bug). */
  | 'replay-stopped'
  | 'close'
  | 'closed';

export const PHASE_TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  direct: ['spooling'],
  spooling: ['emptying', 'stalled'],
  emptying: ['direct', 'spooling', 'stalled'],
  stalled: [],
};

export const LIFECYCLE_TRANSITIONS: Readonly<Record<Lifecycle, readonly Lifecycle[]>> = {
  open: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** A log starts direct and open; records an earlier run left in its spool are a 'kafka-missed'. */
export const INITIAL_STATE: ClickLogState = { phase: 'direct', lifecycle: 'open' };

/** Whether `from → to` is one of the transitions above (one change at a time; staying is allowed). */
export function transitionAllowed(from: ClickLogState, to: ClickLogState): boolean {
  const phaseChanged = from.phase !== to.phase;
  const lifecycleChanged = from.lifecycle !== to.lifecycle;
  if (phaseChanged && lifecycleChanged) return false;
  if (phaseChanged) return from.lifecycle !== 'closed' && PHASE_TRANSITIONS[from.phase].includes(to.phase);
  if (lifecycleChanged) return LIFECYCLE_TRANSITIONS[from.lifecycle].includes(to.lifecycle);
  return true;
}

/** The state after `event`; the same state when the event changes nothing in it. */
export function nextState(state: ClickLogState, event: ClickLogEvent): ClickLogState {
  if (state.lifecycle === 'closed') return state;
  const phase = (from: Phase, to: Phase): ClickLogState =>
    state.phase === from ? { ...state, phase: to } : state;
  switch (event) {
    case 'kafka-missed':
      return phase('direct', 'spooling');
    case 'caught-up':
      return phase('spooling', 'emptying');
    case 'emptied':
      return phase('emptying', 'direct');
    case 'not-emptied':
      return phase('emptying', 'spooling');
    case 'replay-stopped':
      return state.phase === 'spooling' || state.phase === 'emptying'
        ? { ...state, phase: 'stalled' }
        : state;
    case 'close':
      return state.lifecycle === 'open' ? { ...state, lifecycle: 'closing' } : state;
    case 'closed':
      return state.lifecycle === 'closing' ? { ...state, lifecycle: 'closed' } : state;
  }
}

/** Where a batch taken from the buffer goes now: to Kafka, to the spool, or nowhere yet (held). */
export function batchRoute(state: ClickLogState): 'kafka' | 'spool' | 'held' {
  if (state.phase === 'direct') return 'kafka';
  return state.phase === 'emptying' ? 'held' : 'spool';
}

/** The replayer runs (or is being started) in these phases, and only in them, while the log is open. */
export const replays = (state: ClickLogState): boolean =>
  state.phase === 'spooling' || state.phase === 'emptying';

/** Whether the log takes new click events. */
export const accepting = (state: ClickLogState): boolean => state.lifecycle === 'open';

/** What the log reports as its mode (ClickLog.state): direct, or spooling (every other phase). */
export const reportedMode = (state: ClickLogState): 'direct' | 'spooling' =>
  state.phase === 'direct' ? 'direct' : 'spooling';

/**
 * When a spooling log may send directly again (hysteresis). Caught up is not enough: a Kafka that
 * acks, but slower than the deadline (a slow disk, a network toxic of 500 ms), lets the replayer
 * catch up, then misses the next direct batch's deadline, and the log flaps between direct and
 * spooling, every flap holding a batch of clicks for the whole deadline (seen in the fault matrix's
 * "Kafka slow" cell). So the log returns only once Kafka has been calm for `calmMs`: no replay send
 * slower than `slowMs` (half the deadline) and no missed deadline for that long. `calmMs` starts at
 * `baseCalmMs` and doubles, up to `maxCalmMs`, each time a return ends in a miss within `flapWindowMs`;
 * a return that holds that long sets it back. Idle, with no sends to judge by, the log returns after
 * `calmMs` too: at worst one batch a `maxCalmMs` waits out the deadline. Pure: the log feeds it times.
 */
export class DirectReturnGate {
  private lastTroubleAt = Number.NEGATIVE_INFINITY;
  private lastReturnAt: number | undefined;
  private calm: number;

  constructor(
    private readonly opts: { slowMs: number; baseCalmMs: number; maxCalmMs: number; flapWindowMs: number },
  ) {
    this.calm = opts.baseCalmMs;
  }

  /** How long Kafka must be calm before the next return (ms). */
  get calmMs(): number {
    return this.calm;
  }

  /** A replay send was acked after `ms`. */
  sent(now: number, ms: number): void {
    if (ms > this.opts.slowMs) this.lastTroubleAt = now;
  }

  /** A direct batch missed its deadline or failed (the log starts spooling). */
  missed(now: number): void {
    this.lastTroubleAt = now;
    const flapped = this.lastReturnAt !== undefined && now - this.lastReturnAt < this.opts.flapWindowMs;
    this.calm = flapped
      ? Math.min(this.opts.maxCalmMs, Math.max(this.calm * 2, this.opts.baseCalmMs, 1))
      : this.opts.baseCalmMs;
    this.lastReturnAt = undefined;
  }

  /** Whether a caught-up log may send directly now. */
  mayReturn(now: number): boolean {
    return now - this.lastTroubleAt >= this.calm;
  }

  /** How long until `mayReturn` can turn true, if nothing slow happens meanwhile (ms). */
  waitMs(now: number): number {
    return Math.max(0, this.lastTroubleAt + this.calm - now);
  }

  /** The log sends directly again. */
  returned(now: number): void {
    this.lastReturnAt = now;
  }
}
