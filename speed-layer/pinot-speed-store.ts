// SpeedStore over the Pinot REALTIME table fed from `minute_counts` (SPEED_STORE=pinot, the
// default). Each row is one part of an (ad, salt, minute) count (see minute-window.ts); the upsert
// keeps the latest committed value of each part, and this query sums parts and salts.
import { config } from '../common/config.js';
import { query } from '../common/pinot.js';
import type { MinuteCount, SpeedStore } from '../common/speed-store.js';

const AD_ID = /^[1-9][0-9]{0,17}$/;

export class PinotSpeedStore implements SpeedStore {
  constructor(
    private readonly brokerUrl: string = config.PINOT_BROKER_URL,
    private readonly table: string = config.SPEED_PINOT_TABLE,
  ) {}

  async minuteCounts(adIds: readonly string[], from: number, to: number): Promise<MinuteCount[]> {
    if (adIds.length === 0 || to <= from) return [];
    // Pinot has no bind parameters: ids are checked against the id pattern before they are inlined.
    for (const id of adIds) if (!AD_ID.test(id)) throw new Error(`malformed ad id ${JSON.stringify(id)}`);
    const ids = adIds.map((id) => `'${id}'`).join(', ');
    const maxRows = adIds.length * Math.ceil((to - from) / 60_000) + 1;
    const sql =
      `select adId, "minute", sum(clicks) from ${this.table} ` +
      `where adId in (${ids}) and "minute" >= ${Math.floor(from)} and "minute" < ${Math.floor(to)} ` +
      `group by adId, "minute" order by adId, "minute" limit ${maxRows}`;
    const { rows } = await query(sql, { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 5000 } });
    return rows
      .map(([adId, minute, clicks]) => ({
        adId: String(adId),
        minute: Number(minute),
        clicks: Number(clicks),
      }))
      .filter((r) => r.clicks > 0);
  }

  async ping(): Promise<void> {
    await query(`select count(*) from ${this.table} limit 1`, { brokerUrl: this.brokerUrl, timeoutMs: 3000 });
  }

  async close(): Promise<void> {}
}
