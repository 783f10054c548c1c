// The catalogue and impressions API (API.md: Catalogue, Impressions) as an Express router:
// advertisers and their keys, ads and their lifecycle (change, pause, archive), impression keys for
// ad servers, and signed impressions, one or up to 1,000 a request. Every body, query string and path
// parameter is validated by the zod schemas below, which `catalogueRoutes` also hands to the OpenAPI
// document (common/openapi.ts): the schemas say every rule the handlers enforce (patterns, lengths,
// ranges), so a request valid by the document is never a 400. Every error has the API's shape
// `{"error": {"code", "message", "requestId"}}`.
//
// Lifecycle (docs/impressions.md): an ad is `active`, `paused` or `archived` (final). A paused or
// archived ad gets no new impressions (409); clicks on impressions served while it ran still
// redirect and count.
import express, { type Request, type Response, type Router } from 'express';
import type pg from 'pg';
import { z } from 'zod';
import {
  authenticate,
  callerOf,
  canMintFor,
  canSeeAd,
  forgetKey,
  generateApiKey,
  generateImpressionKey,
  hashApiKey,
  requireAdmin,
} from '../common/auth.js';
import { apiErrorHandler, sendApiError, validate } from '../common/http-errors.js';
import { json, jsonBody, keyedErrors, type ApiRoute } from '../common/openapi.js';
import { clickPath, newImpression, type SigningKeys } from './impression.js';
import { ID_PATTERN } from '../common/ids.js';

export interface CatalogueOptions {
  pool: pg.Pool;
  signingKeys: SigningKeys;
  impressionTtlSeconds: number;
  now?: () => number;
}

const id = z.string().regex(ID_PATTERN, 'must be a positive decimal integer (as a string)');

// What `new URL` parses as an absolute http(s) URL with a host, as a pattern the OpenAPI document can
// carry: lowercase scheme; a DNS name whose last label starts with a letter (so it is never read as
// an IPv4 number) or a dotted-quad IPv4 address; an optional port; printable ASCII after it.
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HTTP_URL = new RegExp(
  `^https?://(?:(?:${LABEL}\\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?|(?:${OCTET}\\.){3}${OCTET})` +
    "(?::[0-9]{1,4})?(?:[/?#][A-Za-z0-9._~!$&'()*+,;=:@/?#%-]*)?$",
);
const httpUrl = z
  .string()
  .max(2048)
  .regex(HTTP_URL, 'must be an absolute http(s) URL (ASCII; a host name or IPv4 address)')
  .describe('absolute http(s) URL; internationalized names in their ASCII (punycode) form');

// 1 to 200 characters, counted in code points as the database (and JSON Schema's maxLength) counts
// them, not in UTF-16 units as String.length; no NUL (PostgreSQL text refuses it). The document gets
// the same rule through `meta`.
const displayName = z
  .string()
  .refine((s) => {
    const n = [...s].length;
    return n >= 1 && n <= 200 && !s.includes('\0');
  }, 'must be 1 to 200 characters, without NUL')
  .meta({ minLength: 1, maxLength: 200, pattern: '^[^\\x00]*$', description: '1 to 200 characters, no NUL' });

const newAdvertiser = z.strictObject({ name: displayName });
const newAd = z.strictObject({
  redirectUrl: httpUrl,
  name: displayName.optional(),
  advertiserId: id.optional().describe('with the admin key: the advertiser (required)'),
});
const adChange = z.strictObject({
  redirectUrl: httpUrl.optional(),
  name: displayName.nullable().optional().describe('null clears the name'),
  paused: z.boolean().optional().describe('true pauses the ad (no new impressions), false resumes it'),
});
const newImpressionBody = z.strictObject({ adId: id });
/** The most impressions one batch request mints. */
export const IMPRESSION_BATCH_MAX = 1000;
const impressionBatchBody = z.strictObject({
  adIds: z
    .array(id)
    .min(1)
    .max(IMPRESSION_BATCH_MAX)
    .describe('one entry per impression wanted (an ad id may repeat); 1 to 1,000'),
});
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: id.optional(),
  advertiserId: id
    .optional()
    .describe(
      "with the admin key: only this advertiser's ads (without it, every ad); an advertiser key lists its own",
    ),
});
const adParams = z.object({ adId: id });
const newImpressionKey = z.strictObject({
  name: displayName.describe('who holds the key, e.g. the ad server'),
});
const keyParams = z.object({ keyId: id });

const adStatus = z.enum(['active', 'paused', 'archived']);
const adReply = z.object({
  adId: z.string(),
  advertiserId: z.string(),
  redirectUrl: z.string(),
  name: z.string().nullable(),
  status: adStatus.describe('paused and archived ads get no new impressions; their clicks still redirect'),
  updatedAt: z.string(),
});
const advertiserReply = z.object({ advertiserId: z.string(), name: z.string(), apiKey: z.string() });
const impressionReply = z.object({
  impressionId: z.string(),
  adId: z.string(),
  expiresAt: z.string(),
  clickUrl: z.string().describe('/c/<adId>?imp=&exp=&sig=[&kid=]: kid names the signing key'),
});
const impressionKeyReply = z.object({
  keyId: z.string(),
  name: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});

const adminOnly = { '403': 'not the admin key' };

/** The routes of this router with their schemas (the OpenAPI document is made from them). */
export const catalogueRoutes: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/advertisers',
    summary: 'Create an advertiser (admin); its key is returned this once',
    security: [{ bearer: [] }],
    request: { body: jsonBody(newAdvertiser) },
    responses: {
      '201': json('the advertiser and its key', advertiserReply),
      ...keyedErrors({ ...adminOnly, '413': 'body too large' }),
    },
  },
  {
    method: 'post',
    path: '/v1/ads',
    summary: 'Create an ad (its advertiser, or the admin naming the advertiser)',
    security: [{ bearer: [] }],
    request: { body: jsonBody(newAd) },
    responses: {
      '201': json('the ad', adReply),
      ...keyedErrors({
        '403': 'an advertiser key naming another advertiser, or the admin key naming none',
        '404': 'no such advertiser',
        '413': 'body too large',
      }),
    },
  },
  {
    method: 'get',
    path: '/v1/ads',
    summary:
      'Ads, keyset-paged in id order: an advertiser key its own, the admin key all or one advertiser’s',
    security: [{ bearer: [] }],
    request: { query: listQuery },
    responses: {
      '200': json('a page of ads', z.object({ ads: z.array(adReply), nextCursor: z.string().nullable() })),
      ...keyedErrors({ '403': 'an advertiser key naming another advertiser' }),
    },
  },
  {
    method: 'get',
    path: '/v1/ads/{adId}',
    summary: 'One ad (its owner or the admin)',
    security: [{ bearer: [] }],
    request: { params: adParams },
    responses: { '200': json('the ad', adReply), ...keyedErrors({ '404': 'no such ad (or not yours)' }) },
  },
  {
    method: 'patch',
    path: '/v1/ads/{adId}',
    summary:
      'Change an ad: landing URL, name, paused (its owner or the admin); an empty body changes nothing',
    security: [{ bearer: [] }],
    request: { params: adParams, body: jsonBody(adChange) },
    responses: {
      '200': json('the ad as changed', adReply),
      ...keyedErrors({
        '404': 'no such ad (or not yours)',
        '409': 'the ad is archived (archived is final)',
        '413': 'body too large',
      }),
    },
  },
  {
    method: 'post',
    path: '/v1/ads/{adId}/archive',
    summary:
      'Archive an ad (final; its owner or the admin): no new impressions, old ones still redirect and count',
    security: [{ bearer: [] }],
    request: { params: adParams },
    responses: {
      '200': json('the archived ad (archiving twice is the same)', adReply),
      ...keyedErrors({ '404': 'no such ad (or not yours)' }),
    },
  },
  {
    method: 'post',
    path: '/v1/impressions',
    summary: "A signed click URL for one showing of an ad (an impression key, the admin, or the ad's owner)",
    security: [{ bearer: [] }],
    request: { body: jsonBody(newImpressionBody) },
    responses: {
      '201': json('the impression', impressionReply),
      ...keyedErrors({
        '404': 'no such ad (or not yours)',
        '409': 'the ad is paused or archived',
        '413': 'body too large',
      }),
    },
  },
  {
    method: 'post',
    path: '/v1/impressions/batch',
    summary:
      'Up to 1,000 signed click URLs in one request, in the order asked (an impression key, the admin, or the owner of every ad)',
    security: [{ bearer: [] }],
    request: { body: jsonBody(impressionBatchBody) },
    responses: {
      '201': json(
        'the impressions, one per entry of adIds',
        z.object({ impressions: z.array(impressionReply) }),
      ),
      ...keyedErrors({
        '404': 'an ad does not exist (or is not yours): none is minted; the message names them',
        '409': 'an ad is paused or archived: none is minted; the message names them',
        '413': 'body too large (64 kB)',
      }),
    },
  },
  {
    method: 'post',
    path: '/v1/admin/impression-keys',
    summary: 'Create an impression key (admin): it mints impressions and nothing else; returned this once',
    security: [{ bearer: [] }],
    request: { body: jsonBody(newImpressionKey) },
    responses: {
      '201': json('the key', impressionKeyReply.extend({ apiKey: z.string() })),
      ...keyedErrors({ ...adminOnly, '413': 'body too large' }),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/impression-keys',
    summary: 'Every impression key, revoked ones too (admin); never the keys themselves',
    security: [{ bearer: [] }],
    responses: {
      '200': json('the keys', z.object({ keys: z.array(impressionKeyReply) })),
      ...keyedErrors(adminOnly),
    },
  },
  {
    method: 'post',
    path: '/v1/admin/impression-keys/{keyId}/revoke',
    summary:
      'Revoke one impression key (admin): refused within a minute on every API replica, at once on this one',
    security: [{ bearer: [] }],
    request: { params: keyParams },
    responses: {
      '200': json('the revoked key (revoking twice is the same)', impressionKeyReply),
      ...keyedErrors({ ...adminOnly, '404': 'no such key' }),
    },
  },
];

interface AdRow {
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

interface ImpressionKeyRow {
  key_id: string;
  name: string;
  created_at: Date;
  revoked_at: Date | null;
}
const impressionKeyJson = (r: ImpressionKeyRow) => ({
  keyId: r.key_id,
  name: r.name,
  createdAt: r.created_at.toISOString(),
  revokedAt: r.revoked_at?.toISOString() ?? null,
});

const parse = <S extends z.ZodType>(schema: S, value: unknown): z.output<S> => validate(schema, value);

type Handler = (req: Request, res: Response) => Promise<void>;

export function catalogueRouter(opts: CatalogueOptions): Router {
  const router = express.Router();
  // A batch of 1,000 ids of 18 digits is about 21 kB; every other body stays under 16 kB.
  router.use('/v1/impressions/batch', express.json({ limit: '64kb' }));
  router.use('/v1', express.json({ limit: '16kb' }));
  const auth = authenticate(opts.pool);
  router.post('/v1/advertisers', auth, requireAdmin, createAdvertiser(opts));
  router.post('/v1/ads', auth, createAd(opts));
  router.get('/v1/ads/:adId', auth, getAd(opts));
  router.patch('/v1/ads/:adId', auth, changeAd(opts));
  router.post('/v1/ads/:adId/archive', auth, archiveAd(opts));
  router.get('/v1/ads', auth, listAds(opts));
  router.post('/v1/impressions', auth, createImpression(opts));
  router.post('/v1/impressions/batch', auth, createImpressionBatch(opts));
  router.post('/v1/admin/impression-keys', auth, requireAdmin, createImpressionKey(opts));
  router.get('/v1/admin/impression-keys', auth, requireAdmin, listImpressionKeys(opts));
  router.post('/v1/admin/impression-keys/:keyId/revoke', auth, requireAdmin, revokeImpressionKey(opts));
  router.use(apiErrorHandler('catalogue'));
  return router;
}

/** POST /v1/advertisers (admin): the new advertiser and its key, shown this once. */
function createAdvertiser({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const body = parse(newAdvertiser, req.body);
    const apiKey = generateApiKey();
    const r = await pool.query<{ advertiser_id: string }>(
      'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
      [body.name, hashApiKey(apiKey)],
    );
    res.status(201).json({ advertiserId: r.rows[0]!.advertiser_id, name: body.name, apiKey });
  };
}

/** POST /v1/ads: an advertiser creates its own ads; the admin names the advertiser. */
function createAd({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const body = parse(newAd, req.body);
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
function getAd({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const { adId } = parse(adParams, req.params);
    const ad = await findAd(pool, adId);
    if (!ad || !canSeeAd(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${adId}`);
    res.json(adJson(ad));
  };
}

/**
 * PATCH /v1/ads/:adId {redirectUrl?, name?, paused?}: one UPDATE, conditional on the ad being the
 * caller's and not archived, so two changes at once never undo each other's fields. Each change
 * reaches the click processes through the catalogue's change feed (the `ads` row).
 */
function changeAd({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const { adId } = parse(adParams, req.params);
    const body = parse(adChange, req.body);
    const ad = await findAd(pool, adId);
    if (!ad || !canSeeAd(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${adId}`);
    if (ad.status === 'archived')
      return sendApiError(res, 409, 'ad_archived', `ad ${adId} is archived; archived ads do not change`);
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
    if (!r.rows[0])
      return sendApiError(res, 409, 'ad_archived', `ad ${adId} is archived; archived ads do not change`);
    res.json(adJson(r.rows[0]));
  };
}

/** POST /v1/ads/:adId/archive: final. Idempotent: archiving an archived ad answers it as it is. */
function archiveAd({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const { adId } = parse(adParams, req.params);
    const ad = await findAd(pool, adId);
    if (!ad || !canSeeAd(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${adId}`);
    if (ad.status === 'archived') return void res.json(adJson(ad));
    const r = await pool.query<AdRow>(
      `update ads set status = 'archived', updated_at = now()
       where ad_id = $1 and status <> 'archived' returning ${AD_COLUMNS}`,
      [adId],
    );
    res.json(adJson(r.rows[0] ?? (await findAd(pool, adId))!));
  };
}

/** GET /v1/ads?limit&cursor[&advertiserId]: ads in id order, keyset-paged. */
function listAds({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const q = parse(listQuery, req.query);
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

const impressionJson = (opts: CatalogueOptions, adId: string, now: number) => {
  const i = newImpression(opts.signingKeys, adId, opts.impressionTtlSeconds, now);
  return {
    impressionId: i.impressionId,
    adId: i.adId,
    expiresAt: new Date(i.expiresAt).toISOString(),
    clickUrl: clickPath(i),
  };
};

/** POST /v1/impressions {adId}: a signed click URL for one showing of the ad. */
function createImpression(opts: CatalogueOptions): Handler {
  const now = opts.now ?? Date.now;
  return async (req, res) => {
    const body = parse(newImpressionBody, req.body);
    const ad = await findAd(opts.pool, body.adId);
    if (!ad || !canMintFor(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${body.adId}`);
    if (ad.status !== 'active')
      return sendApiError(
        res,
        409,
        'ad_not_serving',
        `ad ${body.adId} is ${ad.status}: it gets no new impressions`,
      );
    res.status(201).json(impressionJson(opts, body.adId, now()));
  };
}

/**
 * POST /v1/impressions/batch {adIds}: one click URL per entry, in order, after one catalogue query
 * for the distinct ads. All or nothing: an unknown (or not yours) ad is 404, a paused or archived one
 * 409, each naming the ads (at most 20) so the ad server can drop them and retry.
 */
function createImpressionBatch(opts: CatalogueOptions): Handler {
  const now = opts.now ?? Date.now;
  return async (req, res) => {
    const { adIds } = parse(impressionBatchBody, req.body);
    const caller = callerOf(res);
    const distinct = [...new Set(adIds)];
    const r = await opts.pool.query<{ ad_id: string; advertiser_id: string; status: AdRow['status'] }>(
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
    res.status(201).json({ impressions: adIds.map((adId) => impressionJson(opts, adId, t)) });
  };
}

const listOf = (ids: string[]): string =>
  ids.slice(0, 20).join(', ') + (ids.length > 20 ? ` and ${ids.length - 20} more` : '');

/** POST /v1/admin/impression-keys {name}: a key that mints impressions and nothing else, shown this once. */
function createImpressionKey({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const body = parse(newImpressionKey, req.body);
    const apiKey = generateImpressionKey();
    const r = await pool.query<ImpressionKeyRow>(
      `insert into impression_keys (name, key_hash) values ($1, $2)
       returning key_id, name, created_at, revoked_at`,
      [body.name, hashApiKey(apiKey)],
    );
    res.status(201).json({ ...impressionKeyJson(r.rows[0]!), apiKey });
  };
}

/** GET /v1/admin/impression-keys: every key's id, name and dates (never the key). */
function listImpressionKeys({ pool }: CatalogueOptions): Handler {
  return async (_req, res) => {
    const r = await pool.query<ImpressionKeyRow>(
      'select key_id, name, created_at, revoked_at from impression_keys order by key_id',
    );
    res.json({ keys: r.rows.map(impressionKeyJson) });
  };
}

/** POST /v1/admin/impression-keys/:keyId/revoke: this key stops working; the others are untouched. */
function revokeImpressionKey({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const { keyId } = parse(keyParams, req.params);
    const r = await pool.query<ImpressionKeyRow & { key_hash: string }>(
      `update impression_keys set revoked_at = coalesce(revoked_at, now()) where key_id = $1
       returning key_id, name, created_at, revoked_at, key_hash`,
      [keyId],
    );
    const row = r.rows[0];
    if (!row) return sendApiError(res, 404, 'not_found', `no impression key ${keyId}`);
    forgetKey(row.key_hash);
    res.json(impressionKeyJson(row));
  };
}

async function findAd(pool: pg.Pool, adId: string): Promise<AdRow | undefined> {
  const r = await pool.query<AdRow>(`select ${AD_COLUMNS} from ads where ad_id = $1`, [adId]);
  return r.rows[0];
}
