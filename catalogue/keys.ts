// The catalogue API's keys: advertisers (each with its key) and impression keys (an ad server's:
// they mint impressions and nothing else). A key is shown once, at creation; only its hash is stored
// (common/auth.ts). Admin only: catalogue/router.ts puts `requireAdmin` in front of every route here.
import type pg from 'pg';
import { generateApiKey, generateImpressionKey, hashApiKey } from '../common/auth.js';
import { sendApiError, validate } from '../common/http-errors.js';
import { forgetKey } from './authentication.js';
import type { Handler } from './router.js';
import { keyParams, newAdvertiser, newImpressionKey } from './schemas.js';

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

/** POST /v1/advertisers (admin): the new advertiser and its key, shown this once. */
export function createAdvertiser(pool: pg.Pool): Handler {
  return async (req, res) => {
    const body = validate(newAdvertiser, req.body);
    const apiKey = generateApiKey();
    const r = await pool.query<{ advertiser_id: string }>(
      'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
      [body.name, hashApiKey(apiKey)],
    );
    res.status(201).json({ advertiserId: r.rows[0]!.advertiser_id, name: body.name, apiKey });
  };
}

/** POST /v1/admin/impression-keys {name}: a key that mints impressions and nothing else, shown this once. */
export function createImpressionKey(pool: pg.Pool): Handler {
  return async (req, res) => {
    const body = validate(newImpressionKey, req.body);
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
export function listImpressionKeys(pool: pg.Pool): Handler {
  return async (_req, res) => {
    const r = await pool.query<ImpressionKeyRow>(
      'select key_id, name, created_at, revoked_at from impression_keys order by key_id',
    );
    res.json({ keys: r.rows.map(impressionKeyJson) });
  };
}

/** POST /v1/admin/impression-keys/:keyId/revoke: this key stops working; the others are untouched. */
export function revokeImpressionKey(pool: pg.Pool): Handler {
  return async (req, res) => {
    const { keyId } = validate(keyParams, req.params);
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
