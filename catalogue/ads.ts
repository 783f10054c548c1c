// The ads of the catalogue API: create, read, change (landing URL, name, paused), archive, list.
// Lifecycle (docs/impressions.md): an ad is `active`, `paused` or `archived` (final); each change
// reaches the click processes through the catalogue's change feed (the `ads` row). An ad that is not
// the caller's is a 404, never a 403: no hint that it exists.
import type { Request, Response } from 'express';
import type pg from 'pg';
import { callerOf, canSeeAd } from '../common/auth.js';
import { sendApiError, validate } from '../common/http-errors.js';
import type { Handler } from './router.js';
import { adChange, adParams, listQuery, newAd } from './schemas.js';

export interface AdRow {
  ad_id: string;
  advertiser_id: string;
  redirect_url: string;
  name: string | null;
  status: 'active' | 'paused' | 'archived';
  updated_at: Date;
}
const AD_COLUMNS = 'ad_id, advertiser_id, redirect_url, name, status, updated_at';
const adJson = (r: AdRow) => ({
  adId: r.ad_id,
  advertiserId: r.advertiser_id,
  redirectUrl: r.redirect_url,
  name: r.name,
  status: r.status,
  updatedAt: r.updated_at.toISOString(),
});

export async function findAd(pool: pg.Pool, adId: string): Promise<AdRow | undefined> {
  const r = await pool.query<AdRow>(`select ${AD_COLUMNS} from ads where ad_id = $1`, [adId]);
  return r.rows[0];
}

/** The ad of the path (`:adId`) if the caller may see it; else a 404 is sent (no hint that it exists). */
async function callersAd(pool: pg.Pool, req: Request, res: Response): Promise<AdRow | undefined> {
  const { adId } = validate(adParams, req.params);
  const ad = await findAd(pool, adId);
  if (ad && canSeeAd(callerOf(res), ad.advertiser_id)) return ad;
  sendApiError(res, 404, 'not_found', `no ad ${adId}`);
}

const sendArchived = (res: Response, adId: string): void =>
  sendApiError(res, 409, 'ad_archived', `ad ${adId} is archived; archived ads do not change`);

/** POST /v1/ads: an advertiser creates its own ads; the admin names the advertiser. */
export function createAd(pool: pg.Pool): Handler {
  return async (req, res) => {
    const body = validate(newAd, req.body);
    const caller = callerOf(res);
    if (caller.kind === 'advertiser' && body.advertiserId && body.advertiserId !== caller.advertiserId)
      return sendApiError(
        res,
        403,
        'forbidden',
        'advertiserId: an advertiser key creates ads for its own advertiser only',
      );
    if (caller.kind === 'admin' && !body.advertiserId)
      return sendApiError(
        res,
        403,
        'forbidden',
        'advertiserId: the admin key creates ads for an advertiser it names',
      );
    const advertiserId = caller.kind === 'advertiser' ? caller.advertiserId : body.advertiserId!;
    // The ads table has no foreign key (bulk loads); the one-row insert checks the advertiser.
    const r = await pool.query<AdRow>(
      `insert into ads (advertiser_id, redirect_url, name)
       select advertiser_id, $2, $3 from advertisers where advertiser_id = $1
       returning ${AD_COLUMNS}`,
      [advertiserId, new URL(body.redirectUrl).href, body.name ?? null],
    );
    if (!r.rows[0]) return sendApiError(res, 404, 'not_found', `no advertiser ${advertiserId}`);
    res.status(201).json(adJson(r.rows[0]));
  };
}

/** GET /v1/ads/:adId (owner or admin; anyone else gets 404, no hint that it exists). */
export function getAd(pool: pg.Pool): Handler {
  return async (req, res) => {
    const ad = await callersAd(pool, req, res);
    if (ad) res.json(adJson(ad));
  };
}

/**
 * PATCH /v1/ads/:adId {redirectUrl?, name?, paused?}: one UPDATE, conditional on the ad being the
 * caller's and not archived, so two changes at once never undo each other's fields.
 */
export function changeAd(pool: pg.Pool): Handler {
  return async (req, res) => {
    const { adId } = validate(adParams, req.params);
    const body = validate(adChange, req.body);
    const ad = await callersAd(pool, req, res);
    if (!ad) return;
    if (ad.status === 'archived') return sendArchived(res, adId);
    if (body.redirectUrl === undefined && body.name === undefined && body.paused === undefined)
      return void res.json(adJson(ad));
    const r = await pool.query<AdRow>(
      `update ads set
         redirect_url = coalesce($2, redirect_url),
         name = case when $3 then $4 else name end,
         status = case when $5::boolean is null then status when $5 then 'paused' else 'active' end,
         updated_at = now()
       where ad_id = $1 and status <> 'archived'
       returning ${AD_COLUMNS}`,
      [
        adId,
        body.redirectUrl === undefined ? null : new URL(body.redirectUrl).href,
        body.name !== undefined,
        body.name ?? null,
        body.paused ?? null,
      ],
    );
    if (!r.rows[0]) return sendArchived(res, adId);
    res.json(adJson(r.rows[0]));
  };
}

/** POST /v1/ads/:adId/archive: final. Idempotent: archiving an archived ad answers it as it is. */
export function archiveAd(pool: pg.Pool): Handler {
  return async (req, res) => {
    const ad = await callersAd(pool, req, res);
    if (!ad) return;
    if (ad.status === 'archived') return void res.json(adJson(ad));
    const r = await pool.query<AdRow>(
      `update ads set status = 'archived', updated_at = now()
       where ad_id = $1 and status <> 'archived' returning ${AD_COLUMNS}`,
      [ad.ad_id],
    );
    res.json(adJson(r.rows[0] ?? (await findAd(pool, ad.ad_id))!));
  };
}

/** GET /v1/ads?limit&cursor[&advertiserId]: ads in id order, keyset-paged. */
export function listAds(pool: pg.Pool): Handler {
  return async (req, res) => {
    const q = validate(listQuery, req.query);
    const caller = callerOf(res);
    if (caller.kind === 'advertiser' && q.advertiserId && q.advertiserId !== caller.advertiserId)
      return sendApiError(res, 403, 'forbidden', 'advertiserId: an advertiser key lists its own ads only');
    const advertiserId = caller.kind === 'advertiser' ? caller.advertiserId : q.advertiserId;
    const r = await pool.query<AdRow>(
      advertiserId === undefined
        ? `select ${AD_COLUMNS} from ads where ad_id > $1 order by ad_id limit $2`
        : `select ${AD_COLUMNS} from ads where advertiser_id = $3 and ad_id > $1 order by ad_id limit $2`,
      [q.cursor ?? '0', q.limit + 1, ...(advertiserId === undefined ? [] : [advertiserId])],
    );
    const page = r.rows.slice(0, q.limit);
    const nextCursor = r.rows.length > q.limit ? page[page.length - 1]!.ad_id : null;
    res.json({ ads: page.map(adJson), nextCursor });
  };
}
