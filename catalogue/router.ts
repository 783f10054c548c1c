// The catalogue API (API.md: Catalogue, Impressions) as an Express router: advertisers and their
// keys, ads and their lifecycle, impression keys for ad servers, and signed impressions. Run by the
// API process only (apps/api.ts); the click path reads the catalogue through its replica, never
// through these routes. Every error has the API's shape `{"error": {"code", "message", "requestId"}}`.
//
// The room: schemas.ts (zod, also the OpenAPI document's), routes.ts (the document's routes),
// ads.ts, impressions.ts and keys.ts (the handlers), authentication.ts and rate-limits.ts (the key
// check and the limits in front of every /v1 route, wired by apps/api.ts).
import express, { type Request, type Response, type Router } from 'express';
import type pg from 'pg';
import { requireAdmin } from '../common/auth.js';
import { apiErrorHandler } from '../common/http-errors.js';
import { archiveAd, changeAd, createAd, getAd, listAds } from './ads.js';
import { authenticate } from './authentication.js';
import { createImpression, createImpressionBatch, type MintImpression } from './impressions.js';
import { createAdvertiser, createImpressionKey, listImpressionKeys, revokeImpressionKey } from './keys.js';

export interface CatalogueOptions {
  pool: pg.Pool;
  /** Signs one impression of an ad (the click path's scheme, ingest/impression.ts). */
  mintImpression: MintImpression;
  now?: () => number;
}

/** A route's handler; Express 5 hands a rejection to the router's error handler. */
export type Handler = (req: Request, res: Response) => Promise<void>;

export function catalogueRouter(opts: CatalogueOptions): Router {
  const { pool } = opts;
  const minting = { pool, mintImpression: opts.mintImpression, now: opts.now ?? Date.now };
  const router = express.Router();
  // A batch of 1,000 ids of 18 digits is about 21 kB; every other body stays under 16 kB.
  router.use('/v1/impressions/batch', express.json({ limit: '64kb' }));
  router.use('/v1', express.json({ limit: '16kb' }));
  const auth = authenticate(pool);
  router.post('/v1/advertisers', auth, requireAdmin, createAdvertiser(pool));
  router.post('/v1/ads', auth, createAd(pool));
  router.get('/v1/ads/:adId', auth, getAd(pool));
  router.patch('/v1/ads/:adId', auth, changeAd(pool));
  router.post('/v1/ads/:adId/archive', auth, archiveAd(pool));
  router.get('/v1/ads', auth, listAds(pool));
  router.post('/v1/impressions', auth, createImpression(minting));
  router.post('/v1/impressions/batch', auth, createImpressionBatch(minting));
  router.post('/v1/admin/impression-keys', auth, requireAdmin, createImpressionKey(pool));
  router.get('/v1/admin/impression-keys', auth, requireAdmin, listImpressionKeys(pool));
  router.post('/v1/admin/impression-keys/:keyId/revoke', auth, requireAdmin, revokeImpressionKey(pool));
  router.use(apiErrorHandler('catalogue'));
  return router;
}
