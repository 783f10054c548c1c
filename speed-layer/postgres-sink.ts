// SPEED_STORE=postgres: one PostgreSQL transaction per partition flush adds the flush's click deltas
// to speed_counts_minute and moves the partition's checkpoint in speed_offsets. The checkpoint update
// is a compare-and-set on the offset this owner started from, so a consumer that lost the partition
// in a rebalance (a zombie) cannot commit over the new owner: its transaction rolls back.
//
// Deltas (not the window's cumulative parts) are right here because the offsets are in the same
// transaction: each event is added exactly once, and late clicks need no special key.
import type pg from 'pg';
import type { Checkpoint, CountChange, Flush } from './minute-window.js';
import { FencedError, type PartitionSink } from './sink.js';
import { inTransaction } from '../common/db.js';

export class PostgresSink implements PartitionSink {
  constructor(
    private readonly pool: pg.Pool,
    private readonly groupId: string,
    private readonly topic: string,
  ) {}

  async claim(partition: number): Promise<Checkpoint | null> {
    const { rows } = await this.pool.query<{
      next_offset: string;
      replay_from: string;
      watermark: string | null;
    }>(
      `select next_offset, replay_from, watermark from speed_offsets
        where group_id = $1 and topic = $2 and partition = $3`,
      [this.groupId, this.topic, partition],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      nextOffset: Number(row.next_offset),
      replayFrom: Number(row.replay_from),
      watermark: row.watermark === null ? null : Number(row.watermark),
    };
  }

  async commit(partition: number, flush: Flush, previous: Checkpoint): Promise<void> {
    const rows = sumDeltas(flush.changes);
    await inTransaction(this.pool, async (client) => {
      if (rows.length > 0) {
        await client.query(
          `insert into speed_counts_minute (ad_id, salt, minute, clicks, advertiser_id)
         select ad_id, salt, to_timestamp(minute_ms / 1000.0), clicks, advertiser_id
           from unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::int[], $5::bigint[])
                as t(ad_id, salt, minute_ms, clicks, advertiser_id)
         on conflict (ad_id, minute, salt) do update set clicks = speed_counts_minute.clicks + excluded.clicks`,
          [
            rows.map((r) => r.adId),
            rows.map((r) => r.salt),
            rows.map((r) => r.minute),
            rows.map((r) => r.delta),
            rows.map((r) => r.advertiserId),
          ],
        );
      }
      const { checkpoint } = flush;
      const moved = await client.query(
        `insert into speed_offsets (group_id, topic, partition, next_offset, replay_from, watermark)
       values ($1, $2, $3, $4, $5, $6)
       on conflict (group_id, topic, partition) do update
         set next_offset = excluded.next_offset, replay_from = excluded.replay_from,
             watermark = excluded.watermark, updated_at = now()
       where speed_offsets.next_offset = $7`,
        [
          this.groupId,
          this.topic,
          partition,
          checkpoint.nextOffset,
          checkpoint.replayFrom,
          checkpoint.watermark,
          previous.nextOffset,
        ],
      );
      if (moved.rowCount !== 1) {
        throw new FencedError(
          `${this.topic}[${partition}] was committed by another consumer of ${this.groupId} after offset ${previous.nextOffset}`,
        );
      }
    });
  }

  async close(): Promise<void> {
    // The pool belongs to the caller.
  }
}

/** One row per (ad, salt, minute): on-time and late parts of a minute may share a flush. */
type DeltaRow = Pick<CountChange, 'adId' | 'advertiserId' | 'salt' | 'minute' | 'delta'>;
function sumDeltas(changes: CountChange[]): DeltaRow[] {
  const byKey = new Map<string, DeltaRow>();
  for (const c of changes) {
    const key = `${c.adId}:${c.salt}:${c.minute}`;
    const row = byKey.get(key);
    if (row) row.delta += c.delta;
    else
      byKey.set(key, {
        adId: c.adId,
        advertiserId: c.advertiserId,
        salt: c.salt,
        minute: c.minute,
        delta: c.delta,
      });
  }
  return [...byKey.values()];
}
