// Signed impressions from the catalogue API, one or up to 1,000 a request (API.md: Impressions). A
// paused or archived ad gets none (409); clicks on impressions served while it ran still redirect and
// count. The signing itself is the click path's scheme (ingest/impression.ts), handed in by
// apps/api.ts as `MintImpression`.
import type pg from 'pg';
import { callerOf, canSeeAd, type Caller } from '../common/auth.js';
import { sendApiError, validate } from '../common/http-errors.js';
import { findAd, type AdRow } from './ads.js';
import type { Handler } from './router.js';
import { impressionBatchBody, newImpressionBody } from './schemas.js';

/** One signed impression of an ad, minted at `nowMs`, with its click URL path (`/c/<adId>?imp…`). */
export type MintImpression = (
  adId: string,
  nowMs: number,
) => { impressionId: string; adId: string; expiresAt: number; clickPath: string };

export interface ImpressionOptions {
  pool: pg.Pool;
  mintImpression: MintImpression;
  now: () => number;
}

/** May `caller` mint impressions of an ad owned by `adAdvertiserId`? The admin, any impression key, the owner. */
export function canMintFor(caller: Caller, adAdvertiserId: string): boolean {
  return caller.kind === 'minter' || canSeeAd(caller, adAdvertiserId);
}

const impressionJson = (mint: MintImpression, adId: string, now: number) => {
  const i = mint(adId, now);
  return {
    impressionId: i.impressionId,
    adId: i.adId,
    expiresAt: new Date(i.expiresAt).toISOString(),
    clickUrl: i.clickPath,
  };
};

/** POST /v1/impressions {adId}: a signed click URL for one showing of the ad. */
export function createImpression({ pool, mintImpression, now }: ImpressionOptions): Handler {
  return async (req, res) => {
    const body = validate(newImpressionBody, req.body);
    const ad = await findAd(pool, body.adId);
    if (!ad || !canMintFor(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${body.adId}`);
    if (ad.status !== 'active')
      return sendApiError(
        res,
        409,
        'ad_not_serving',
        `ad ${body.adId} is ${ad.status}: it gets no new impressions`,
      );
    res.status(201).json(impressionJson(mintImpression, body.adId, now()));
  };
}

/**
 * POST /v1/impressions/batch {adIds}: one click URL per entry, in order, after one catalogue query
 * for the distinct ads. All or nothing: an unknown (or not yours) ad is 404, a paused or archived one
 * 409, each naming the ads (at most 20) so the ad server can drop them and retry.
 */
export function createImpressionBatch({ pool, mintImpression, now }: ImpressionOptions): Handler {
  return async (req, res) => {
    const { adIds } = validate(impressionBatchBody, req.body);
    const caller = callerOf(res);
    const distinct = [...new Set(adIds)];
    const r = await pool.query<{ ad_id: string; advertiser_id: string; status: AdRow['status'] }>(
      'select ad_id, advertiser_id, status from ads where ad_id = any($1::bigint[])',
      [distinct],
    );
    const found = new Map(r.rows.map((row) => [row.ad_id, row]));
    const missing = distinct.filter((a) => {
      const ad = found.get(a);
      return !ad || !canMintFor(caller, ad.advertiser_id);
    });
    if (missing.length > 0) return sendApiError(res, 404, 'not_found', `no ads ${listOf(missing)}`);
    const notServing = distinct.filter((a) => found.get(a)!.status !== 'active');
    if (notServing.length > 0)
      return sendApiError(
        res,
        409,
        'ad_not_serving',
        `ads ${listOf(notServing)} are paused or archived: they get no new impressions`,
      );
    const t = now();
    res.status(201).json({ impressions: adIds.map((adId) => impressionJson(mintImpression, adId, t)) });
  };
}

const listOf = (ids: string[]): string =>
  ids.slice(0, 20).join(', ') + (ids.length > 20 ? ` and ${ids.length - 20} more` : '');
