// The serving API's routes with their schemas (API.md: Metrics and Operations): the OpenAPI document
// is made from them, and the handlers validate with the same schemas (query.ts).
import { z } from 'zod';
import { json, jsonBody, keyedErrors, type ApiRoute } from '../common/openapi.js';
import {
  adPathParams,
  advertiserClicksQuery,
  backfillBody,
  clicksQuery,
  hoursQuery,
  reconciliationQuery,
} from './query.js';

const point = z.object({
  start: z.string(),
  clicks: z.number().int(),
  final: z.boolean(),
  revision: z.number().int().optional().describe('final points: the finalization they come from'),
  finalizedAt: z.string().optional(),
  unavailable: z.literal(true).optional(),
});
const series = {
  granularity: z.enum(['minute', 'hour', 'day']),
  from: z.string(),
  to: z.string(),
  total: z.number().int(),
  points: z.array(point),
  unavailable: z
    .object({ layer: z.literal('speed'), reason: z.string(), requestId: z.string() })
    .optional()
    .describe('the speed layer did not answer: provisional counts are missing'),
};
const adminOnly = { '403': 'not the admin key' };

/** Query of the adjustments lists. */
export const adjustmentsQuery = hoursQuery.extend({
  advertiserId: z
    .string()
    .regex(/^\d{1,18}$/, 'advertiserId must be a positive integer')
    .optional()
    .describe('with the admin key: only this advertiser (its own row and its ads)'),
});
const adjustment = z.object({
  hour: z.string(),
  revision: z.number().int().describe('the revision that made the change (2 or more)'),
  finalizedAt: z.string(),
  adId: z.string().optional().describe('an ad row; absent on an advertiser row'),
  advertiserId: z.string().nullable(),
  clicksBefore: z.number().int().describe('final clicks in the revision before'),
  clicksAfter: z.number().int(),
  delta: z.number().int().describe('clicksAfter − clicksBefore'),
});
const adjustmentsBody = z.object({
  from: z.string(),
  to: z.string(),
  adjustments: z.array(adjustment),
  truncated: z.boolean().describe('more than 10,000 rows: narrow the range'),
});

/** The routes of this router with their schemas (the OpenAPI document is made from them). */
export const servingRoutes: ApiRoute[] = [
  {
    method: 'get',
    path: '/',
    summary: 'The dashboard (enter an advertiser key in the page)',
    responses: { '200': { description: 'HTML', content: { 'text/html': { schema: z.string() } } } },
  },
  {
    method: 'get',
    path: '/v1/ads/{adId}/clicks',
    summary: "One ad's clicks per minute, hour or day (owner or admin)",
    security: [{ bearer: [] }],
    request: { params: adPathParams, query: clicksQuery },
    responses: {
      '200': json('the merged series', z.object({ adId: z.string(), ...series })),
      ...keyedErrors({ '404': 'no such ad (or not yours)' }),
    },
  },
  {
    method: 'get',
    path: '/v1/advertisers/me/clicks',
    summary: "The advertiser's clicks summed over its ads, and its top ads",
    security: [{ bearer: [] }],
    request: { query: advertiserClicksQuery },
    responses: {
      '200': json(
        'the merged series and the top ads',
        z.object({
          advertiserId: z.string(),
          ...series,
          ads: z.array(z.object({ adId: z.string(), clicks: z.number().int(), name: z.string().nullable() })),
        }),
      ),
      ...keyedErrors(),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/hours',
    summary: "Each hour's state and counts per layer (admin)",
    security: [{ bearer: [] }],
    request: { query: hoursQuery },
    responses: {
      '200': json(
        'the hours',
        z.object({
          from: z.string(),
          to: z.string(),
          hours: z
            .array(z.record(z.string(), z.unknown()))
            .describe(
              'per hour: `state` open | waiting (for completeness: `waitingFor`, `waitingSince`; not an error) | ' +
                'failed (`failure.reason`: an error, or a refusal past the raw cutoff) | finalized; revisions; counts per layer',
            ),
        }),
      ),
      ...keyedErrors(adminOnly),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/reconciliation',
    summary: 'The daily reconciliation report (admin)',
    security: [{ bearer: [] }],
    request: { query: reconciliationQuery },
    responses: {
      '200': json(
        'the report',
        z.object({
          date: z.string(),
          createdAt: z.string(),
          speedTotal: z.number(),
          batchTotal: z.number(),
          report: z.unknown(),
        }),
      ),
      ...keyedErrors({ ...adminOnly, '404': 'no report for that day yet' }),
    },
  },
  {
    method: 'post',
    path: '/v1/admin/backfills',
    summary: 'Start the backfill workflow of an hour-aligned window (admin)',
    security: [{ bearer: [] }],
    request: { body: jsonBody(backfillBody) },
    responses: {
      '202': json('the workflow', z.object({ workflowId: z.string(), from: z.string(), to: z.string() })),
      ...keyedErrors({
        ...adminOnly,
        '409':
          'past_raw_cutoff: the range starts before the raw cutoff (named in the message); its finals cannot be recounted',
        '413': 'body too large',
      }),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/adjustments',
    summary:
      'Final counts changed after their first finalization: per revision, per ad and per advertiser (admin)',
    security: [{ bearer: [] }],
    request: { query: adjustmentsQuery },
    responses: {
      '200': json('the adjustments, oldest hour first', adjustmentsBody),
      ...keyedErrors(adminOnly),
    },
  },
  {
    method: 'get',
    path: '/v1/advertisers/me/adjustments',
    summary:
      "The advertiser's own adjustments: its ads' and its total final counts changed by later revisions",
    security: [{ bearer: [] }],
    request: { query: adjustmentsQuery },
    responses: { '200': json('the adjustments, oldest hour first', adjustmentsBody), ...keyedErrors() },
  },
];
