// The click route as the OpenAPI document states it (GET /c/:adId). The lean click path checks its
// query by hand (ingest/impression.ts) and, whatever the query holds, redirects a known ad: so the
// schema puts no format on imp, exp, sig or kid (a malformed impression is a redirect that is not
// counted, never a 400); only a malformed ad id is a 400, an unknown one a 404.
import { z } from 'zod';
import { ID_PATTERN } from '../common/ids.js';
import type { ApiRoute } from '../common/openapi.js';

const impressionPart = (what: string) =>
  z.string().optional().describe(`${what}; anything else (or nothing) still redirects, uncounted`);

export const clickRouteContract: ApiRoute[] = [
  {
    method: 'get',
    path: '/c/{adId}',
    summary:
      "A click: 302 to the ad's registered URL, always for a known ad; counted only for a valid first click (HEAD is never counted)",
    request: {
      params: z.object({ adId: z.string().regex(ID_PATTERN).describe('decimal ad id (1 to 18 digits)') }),
      query: z.object({
        imp: impressionPart('impression id (a UUID)'),
        exp: impressionPart('expiry, epoch ms'),
        sig: impressionPart('HMAC-SHA256, base64url (docs/impressions.md)'),
        kid: impressionPart('id of the signing key; absent: the unnamed key'),
      }),
    },
    responses: {
      '302': {
        description:
          "redirect to the ad's registered URL: also for a missing, malformed, badly signed, expired or duplicate impression, and for a paused or archived ad",
        headers: z.object({ location: z.string().describe("the ad's registered URL") }),
      },
      '400': { description: 'malformed ad id' },
      '404': { description: 'unknown ad' },
      '503': {
        description:
          'the click could not be logged (log_unavailable) or the catalogue read (catalogue_unavailable)',
      },
    },
  },
];
