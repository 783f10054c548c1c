// The catalogue and impressions API (API.md: Catalogue, Impressions) as an Express router:
// advertisers and their keys, ads, and signed impressions. Every body, query string and path
// parameter is validated by the zod schemas below, which `catalogueRoutes` also hands to the OpenAPI
// document (common/openapi.ts); every error has the API's shape `{"error": {"code", "message",
// "requestId"}}`.
import express, { type Request, type Response, type Router } from 'express';
import type pg from 'pg';
import { z } from 'zod';
import {
  authenticate,
  callerOf,
  canSeeAd,
  generateApiKey,
  hashApiKey,
  requireAdmin,
  type Caller,
} from '../common/auth.js';
import { apiErrorHandler, BadRequest, sendApiError, validate } from '../common/http-errors.js';
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

const httpUrl = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an absolute http(s) URL');

const newAdvertiser = z.strictObject({ name: z.string().trim().min(1).max(200) });
const newAd = z.strictObject({
  redirectUrl: httpUrl,
  name: z.string().max(200).optional(),
  advertiserId: id.optional(),
});
const newImpressionBody = z.strictObject({ adId: id });
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: id.optional(),
  advertiserId: id.optional(),
});
const adParams = z.object({ adId: id });

const adReply = z.object({
  adId: z.string(),
  advertiserId: z.string(),
  redirectUrl: z.string(),
  name: z.string().nullable(),
});
const advertiserReply = z.object({ advertiserId: z.string(), name: z.string(), apiKey: z.string() });
const impressionReply = z.object({
  impressionId: z.string(),
  adId: z.string(),
  expiresAt: z.string(),
  clickUrl: z.string().describe('/c/<adId>?imp=&exp=&sig=[&kid=]: kid names the signing key'),
});

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
      ...keyedErrors({ '403': 'not the admin key', '413': 'body too large' }),
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
      ...keyedErrors({ '404': 'no such advertiser', '413': 'body too large' }),
    },
  },
  {
    method: 'get',
    path: '/v1/ads',
    summary: "One advertiser's ads, keyset-paged",
    security: [{ bearer: [] }],
    request: { query: listQuery },
    responses: {
      '200': json('a page of ads', z.object({ ads: z.array(adReply), nextCursor: z.string().nullable() })),
      ...keyedErrors(),
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
    method: 'post',
    path: '/v1/impressions',
    summary: "A signed click URL for one showing of an ad (admin, or the ad's owner)",
    security: [{ bearer: [] }],
    request: { body: jsonBody(newImpressionBody) },
    responses: {
      '201': json('the impression', impressionReply),
      ...keyedErrors({ '404': 'no such ad (or not yours)', '413': 'body too large' }),
    },
  },
];

interface AdRow {
  ad_id: string;
  advertiser_id: string;
  redirect_url: string;
  name: string | null;
}
const adJson = (r: AdRow) => ({
  adId: r.ad_id,
  advertiserId: r.advertiser_id,
  redirectUrl: r.redirect_url,
  name: r.name,
});

const parse = <S extends z.ZodType>(schema: S, value: unknown): z.output<S> => validate(schema, value);

const badRequest = (message: string): BadRequest => new BadRequest('bad_request', message);

type Handler = (req: Request, res: Response) => Promise<void>;

export function catalogueRouter(opts: CatalogueOptions): Router {
  const router = express.Router();
  router.use('/v1', express.json({ limit: '16kb' }));
  const auth = authenticate(opts.pool);
  router.post('/v1/advertisers', auth, requireAdmin, createAdvertiser(opts));
  router.post('/v1/ads', auth, createAd(opts));
  router.get('/v1/ads/:adId', auth, getAd(opts));
  router.get('/v1/ads', auth, listAds(opts));
  router.post('/v1/impressions', auth, createImpression(opts));
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
    const advertiserId = ownerForNewAd(callerOf(res), body.advertiserId);
    // The ads table has no foreign key (bulk loads); the one-row insert checks the advertiser.
    const r = await pool.query<AdRow>(
      `insert into ads (advertiser_id, redirect_url, name)
       select advertiser_id, $2, $3 from advertisers where advertiser_id = $1
       returning ad_id, advertiser_id, redirect_url, name`,
      [advertiserId, new URL(body.redirectUrl).href, body.name ?? null],
    );
    if (!r.rows[0]) return sendApiError(res, 404, 'not_found', `no advertiser ${advertiserId}`);
    res.status(201).json(adJson(r.rows[0]));
  };
}

function ownerForNewAd(caller: Caller, requested: string | undefined): string {
  if (caller.kind === 'advertiser') {
    if (requested && requested !== caller.advertiserId)
      throw badRequest('advertiserId: an advertiser key creates ads for its own advertiser only');
    return caller.advertiserId;
  }
  if (!requested) throw badRequest('advertiserId: required with the admin key');
  return requested;
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

/** GET /v1/ads?limit&cursor: one advertiser's ads in id order, keyset-paged. */
function listAds({ pool }: CatalogueOptions): Handler {
  return async (req, res) => {
    const q = parse(listQuery, req.query);
    const caller = callerOf(res);
    const advertiserId = caller.kind === 'advertiser' ? caller.advertiserId : q.advertiserId;
    if (!advertiserId) throw badRequest('advertiserId: required with the admin key');
    if (caller.kind === 'advertiser' && q.advertiserId && q.advertiserId !== advertiserId)
      throw badRequest('advertiserId: an advertiser key lists its own ads only');
    const r = await pool.query<AdRow>(
      `select ad_id, advertiser_id, redirect_url, name from ads
       where advertiser_id = $1 and ad_id > $2 order by ad_id limit $3`,
      [advertiserId, q.cursor ?? '0', q.limit + 1],
    );
    const page = r.rows.slice(0, q.limit);
    const nextCursor = r.rows.length > q.limit ? page[page.length - 1]!.ad_id : null;
    res.json({ ads: page.map(adJson), nextCursor });
  };
}

/** POST /v1/impressions {adId}: a signed click URL for one showing of the ad. */
function createImpression(opts: CatalogueOptions): Handler {
  const now = opts.now ?? Date.now;
  return async (req, res) => {
    const body = parse(newImpressionBody, req.body);
    const ad = await findAd(opts.pool, body.adId);
    if (!ad || !canSeeAd(callerOf(res), ad.advertiser_id))
      return sendApiError(res, 404, 'not_found', `no ad ${body.adId}`);
    const i = newImpression(opts.signingKeys, body.adId, opts.impressionTtlSeconds, now());
    res.status(201).json({
      impressionId: i.impressionId,
      adId: i.adId,
      expiresAt: new Date(i.expiresAt).toISOString(),
      clickUrl: clickPath(i),
    });
  };
}

async function findAd(pool: pg.Pool, adId: string): Promise<AdRow | undefined> {
  const r = await pool.query<AdRow>(
    'select ad_id, advertiser_id, redirect_url, name from ads where ad_id = $1',
    [adId],
  );
  return r.rows[0];
}
