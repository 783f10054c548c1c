// The speed layer's read contract, used by the serving layer. Implementations: Pinot (default) and
// PostgreSQL (SPEED_STORE=postgres); both pass one shared contract test suite.
export interface MinuteCount {
  adId: string;
  /** Bucket start, epoch ms, minute-aligned (UTC). */
  minute: number;
  /** Provisional count of valid first clicks, salts already summed. */
  clicks: number;
}

export interface SpeedStore {
  /** Provisional counts for these ads with minute in [from, to); minutes with no clicks are absent. */
  minuteCounts(adIds: readonly string[], from: number, to: number): Promise<MinuteCount[]>;
  /** Resolves when the store answers; rejects with the reason otherwise (used by /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
