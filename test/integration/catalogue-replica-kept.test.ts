// The replica's kept ads (ingest/catalogue-replica.ts, `get`): a reader keeps the ads it decoded
// while the replica's generation of ads is unchanged. Here a writer and a reader, two replicas on one
// LMDB directory (as the click primary and a click worker are), go through a seeded mix of ad changes
// (puts, URL changes, pauses, deletes, snapshot batches, a clear) and reads of hot ads; after every
// write, once the event loop has turned (lmdb's read snapshot is renewed per turn), each read must
// give what the test itself last wrote, never an ad the reader kept from before.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CatalogueReplica,
  WRITTEN_GENERATIONS,
  type AdChange,
  type ReplicaAd,
} from '../../ingest/catalogue-replica.js';
import { mulberry32 } from '../../common/seeded-random.js';

const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe('catalogue replica: kept ads follow every write', () => {
  const dir = join(tmpdir(), `adclick-replica-kept-${randomUUID()}`);
  const writer = CatalogueReplica.open(dir);
  const reader = CatalogueReplica.open(dir);
  afterAll(async () => {
    await writer.close();
    await reader.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([1, 2, 3])('seed %i: every read after a write sees it', async (seed) => {
    const random = mulberry32(seed);
    const truth = new Map<string, ReplicaAd>();
    const ids = Array.from({ length: 40 }, (_, i) => String(seed * 1000 + i + 1));
    const pick = () => ids[Math.floor(random() * random() * ids.length)]!; // skewed: some ads hot
    const anAd = (i: number): ReplicaAd => {
      const ad: ReplicaAd = { advertiserId: String(1 + (i % 3)), redirectUrl: `https://a.example/${i}` };
      if (random() < 0.3) ad.state = random() < 0.5 ? 'paused' : 'archived';
      return ad;
    };
    const first: Array<[string, ReplicaAd]> = ids.slice(0, 20).map((id, i) => [id, anAd(i)]);
    await writer.putMany(first);
    for (const [id, ad] of first) truth.set(id, ad);
    await turn();
    for (let step = 0; step < 300; step++) {
      // Reads first: the reader keeps what it read.
      for (let r = 0; r < 8; r++) {
        const id = pick();
        expect(reader.get(id), `seed ${seed} step ${step} ad ${id}`).toEqual(truth.get(id));
      }
      const roll = random();
      if (roll < 0.6) {
        const changes: AdChange[] = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
          const id = pick();
          return { adId: id, ad: random() < 0.15 ? null : anAd(step * 10 + Math.floor(random() * 10)) };
        });
        await writer.apply('t', changes, { 0: String(step) });
        for (const c of changes)
          if (c.ad) truth.set(c.adId, c.ad);
          else truth.delete(c.adId);
      } else if (roll < 0.75) {
        const batch: Array<[string, ReplicaAd]> = [
          [pick(), anAd(step)],
          [pick(), anAd(step + 1)],
        ];
        await writer.putMany(batch);
        for (const [id, ad] of batch) truth.set(id, ad);
      } else if (roll < 0.8) {
        const id = pick();
        const ad = random() < 0.5 ? anAd(step) : null;
        writer.putSync(id, ad);
        if (ad) truth.set(id, ad);
        else truth.delete(id);
      } else if (roll < 0.81) {
        await writer.clear();
        truth.clear();
      } else {
        // A write that is not of ads (the feed's status) keeps what the reader holds.
        await writer.setStatus({ state: 'caught_up', at: Date.now() });
      }
      await turn();
    }
  });

  // Ads change all day at real volume: a write of a few ads must not cost the reader every ad it
  // kept (before, each write dropped them all, and nearly every click became a B-tree read).
  it('a write drops only the ads it wrote from what the reader kept', async () => {
    const fresh = join(tmpdir(), `adclick-replica-kept-${randomUUID()}`);
    const w = CatalogueReplica.open(fresh);
    const r = CatalogueReplica.open(fresh);
    try {
      const ids = Array.from({ length: 10 }, (_, i) => String(80_001 + i));
      const ad = (id: string, v: string): ReplicaAd => ({
        advertiserId: '8',
        redirectUrl: `https://a.example/${id}/${v}`,
      });
      await w.putMany(ids.map((id) => [id, ad(id, 'a')]));
      await turn();
      for (const id of ids) expect(r.get(id)).toEqual(ad(id, 'a'));
      const before = r.diskReads;
      await w.apply('t', [{ adId: ids[3]!, ad: ad(ids[3]!, 'b') }], { 0: '1' });
      w.putSync(ids[7]!, null);
      await turn();
      for (const id of ids)
        expect(r.get(id)).toEqual(id === ids[3] ? ad(id, 'b') : id === ids[7] ? undefined : ad(id, 'a'));
      expect(r.diskReads - before).toBe(2);
      // A reader further behind than the record of written ids drops everything it kept.
      await Promise.all(
        Array.from({ length: WRITTEN_GENERATIONS + 1 }, (_, i) =>
          w.apply('t', [{ adId: '89999', ad: ad('89999', String(i)) }], { 0: String(2 + i) }),
        ),
      );
      await turn();
      const behind = r.diskReads;
      for (const id of ids)
        expect(r.get(id)).toEqual(id === ids[3] ? ad(id, 'b') : id === ids[7] ? undefined : ad(id, 'a'));
      expect(r.diskReads - behind).toBe(ids.length);
    } finally {
      await w.close();
      await r.close();
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  // A clear must not give the generation a value a reader may already hold: after one write the
  // reader keeps its ads under generation 1, and a clear that started the count again would make
  // the replica's generation 1 once more, so the reader would go on returning the ads it cleared.
  it('a clear right after the first write of a replica hides what the reader kept', async () => {
    const fresh = join(tmpdir(), `adclick-replica-kept-${randomUUID()}`);
    const w = CatalogueReplica.open(fresh);
    const r = CatalogueReplica.open(fresh);
    try {
      const ad: ReplicaAd = { advertiserId: '7', redirectUrl: 'https://a.example/kept' };
      await w.putMany([['70001', ad]]);
      await turn();
      expect(r.get('70001')).toEqual(ad);
      await w.clear();
      await turn();
      expect(r.get('70001')).toBeUndefined();
    } finally {
      await w.close();
      await r.close();
      rmSync(fresh, { recursive: true, force: true });
    }
  });
});
