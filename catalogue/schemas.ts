// The catalogue API's request and reply schemas (zod). The handlers validate with them and the
// OpenAPI document (catalogue/routes.ts, common/openapi.ts) is made from them: the schemas say every
// rule the handlers enforce (patterns, lengths, ranges), so a request valid by the document is never
// a 400.
import { z } from 'zod';
import { ID_PATTERN } from '../common/ids.js';

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

export const newAdvertiser = z.strictObject({ name: displayName });
export const newAd = z.strictObject({
  redirectUrl: httpUrl,
  name: displayName.optional(),
  advertiserId: id.optional().describe('with the admin key: the advertiser (required)'),
});
export const adChange = z.strictObject({
  redirectUrl: httpUrl.optional(),
  name: displayName.nullable().optional().describe('null clears the name'),
  paused: z.boolean().optional().describe('true pauses the ad (no new impressions), false resumes it'),
});
export const newImpressionBody = z.strictObject({ adId: id });
/** The most impressions one batch request mints. */
export const IMPRESSION_BATCH_MAX = 1000;
export const impressionBatchBody = z.strictObject({
  adIds: z
    .array(id)
    .min(1)
    .max(IMPRESSION_BATCH_MAX)
    .describe('one entry per impression wanted (an ad id may repeat); 1 to 1,000'),
});
export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: id.optional(),
  advertiserId: id
    .optional()
    .describe(
      "with the admin key: only this advertiser's ads (without it, every ad); an advertiser key lists its own",
    ),
});
export const adParams = z.object({ adId: id });
export const newImpressionKey = z.strictObject({
  name: displayName.describe('who holds the key, e.g. the ad server'),
});
export const keyParams = z.object({ keyId: id });

const adStatus = z.enum(['active', 'paused', 'archived']);
export const adReply = z.object({
  adId: z.string(),
  advertiserId: z.string(),
  redirectUrl: z.string(),
  name: z.string().nullable(),
  status: adStatus.describe('paused and archived ads get no new impressions; their clicks still redirect'),
  updatedAt: z.string(),
});
export const advertiserReply = z.object({ advertiserId: z.string(), name: z.string(), apiKey: z.string() });
export const impressionReply = z.object({
  impressionId: z.string(),
  adId: z.string(),
  expiresAt: z.string(),
  clickUrl: z.string().describe('/c/<adId>?imp=&exp=&sig=[&kid=]: kid names the signing key'),
});
export const impressionKeyReply = z.object({
  keyId: z.string(),
  name: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});
