// The HTTP surface as data: each router lists its routes with the zod schemas its handlers validate
// with (`ApiRoute`), and from that one list come the OpenAPI 3.1 document served at /openapi.json
// (@asteasolutions/zod-to-openapi) and the 405 answer for a method a path does not take.
import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  type ResponseConfig,
  type RouteConfig,
} from '@asteasolutions/zod-to-openapi';
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { sendApiError } from './http-errors.js';

export type ApiRoute = RouteConfig;

/** The error body every 4xx/5xx answer has (API.md). */
export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), requestId: z.string() }),
});

const errorResponse = (description: string): ResponseConfig => ({
  description,
  content: { 'application/json': { schema: errorBody } },
});

/** The error answers a route with a key can give, beside its own. */
export const keyedErrors = (extra: Record<string, string> = {}): Record<string, ResponseConfig> =>
  Object.fromEntries(
    Object.entries({
      '400': 'invalid request (the message says what to fix)',
      '401': 'missing or unknown API key',
      '429': 'too many requests; see Retry-After',
      ...extra,
    }).map(([status, description]) => [status, errorResponse(description)]),
  );

/** A JSON response of `schema`. */
export const json = (description: string, schema: z.ZodType): ResponseConfig => ({
  description,
  content: { 'application/json': { schema } },
});

/** A JSON request body of `schema`. */
export const jsonBody = (schema: z.ZodType) => ({
  required: true,
  content: { 'application/json': { schema } },
});

export function openApiDocument(routes: readonly ApiRoute[], info: { title: string; version: string }) {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'the admin key (ADCLICK_ADMIN_KEY) or an advertiser key (ak_…)',
  });
  for (const route of routes) registry.registerPath(route);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      ...info,
      description:
        'Errors are {"error": {"code", "message", "requestId"}}; 429 comes with Retry-After; a body over the limit is 413.',
    },
  });
}

/**
 * 405 (with Allow) for a known path asked with a method it does not take; OPTIONS answers the Allow
 * list. Unknown paths pass through (to a 404 further on).
 */
export function methodNotAllowed(routes: readonly ApiRoute[]): RequestHandler {
  const paths = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  for (const r of routes) {
    let entry = paths.get(r.path);
    if (!entry) {
      const pattern = new RegExp(`^${r.path.replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
      paths.set(r.path, (entry = { pattern, methods: new Set() }));
    }
    entry.methods.add(r.method.toUpperCase());
    if (r.method === 'get') entry.methods.add('HEAD');
  }
  return (req, res, next) => {
    const allowed = new Set<string>();
    for (const { pattern, methods } of paths.values())
      if (pattern.test(req.path)) for (const m of methods) allowed.add(m);
    if (allowed.size === 0 || allowed.has(req.method)) return next();
    const allow = [...allowed, 'OPTIONS'].join(', ');
    res.setHeader('allow', allow);
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    sendApiError(res, 405, 'method_not_allowed', `${req.path} takes ${allow}`);
  };
}
