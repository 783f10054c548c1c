// The catalogue API's routes as the OpenAPI document describes them (API.md: Catalogue,
// Impressions): method, path, who may call, the request schemas and every answer. apps/api.ts puts
// them in the one document of the API process; catalogue/router.ts serves them.
import { z } from 'zod';
import { json, jsonBody, keyedErrors, type ApiRoute } from '../common/openapi.js';
import {
  adChange,
  adParams,
  adReply,
  advertiserReply,
  impressionBatchBody,
  impressionKeyReply,
  impressionReply,
  keyParams,
  listQuery,
  newAd,
  newAdvertiser,
  newImpressionBody,
  newImpressionKey,
} from './schemas.js';

const adminOnly = { '403': 'not the admin key' };

/** The routes of the catalogue API with their schemas (the OpenAPI document is made from them). */
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
