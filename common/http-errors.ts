// The API's error shape (`{"error": {"code", "message", "requestId"}}`) and the Express pieces every
// HTTP process shares: a request id per request (echoed in X-Request-Id), the one error handler
// routers end with, and request validation with zod. A bad request says what to fix; anything
// unexpected is logged with its request id and answered with a generic 500, so no internal detail
// (SQL, hosts, ports, stack traces) reaches a client — the log has it under the same id.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { isDatabaseUnavailable } from './db.js';

/** A client error: answered `400` with its code and message. */
export class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// Our own proxies (the click process, nginx) may pass an id on; anything else gets a fresh one.
const REQUEST_ID = /^[A-Za-z0-9-]{8,64}$/;

/** Express middleware: a request id for every request, in `res.locals.requestId` and X-Request-Id. */
export const requestId: RequestHandler = (req, res, next) => {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  res.locals.requestId = id;
  res.setHeader('x-request-id', id);
  req.headers['x-request-id'] = id; // a proxy passes it on: one id from the edge to the API's log
  next();
};

/** The request id of this response (set by `requestId`, else made now and echoed). */
export function requestIdOf(res: Response): string {
  let id = (res.locals as { requestId?: string }).requestId;
  if (!id) {
    id = randomUUID();
    res.locals.requestId = id;
    if (!res.headersSent) res.setHeader('x-request-id', id);
  }
  return id;
}

/** Writes `{"error": {"code", "message", "requestId"}}` with `status`. */
export function sendApiError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message, requestId: requestIdOf(res) } });
}

/** One log line about a request, under its id: where error details go instead of the body. */
export function logRequest(logName: string, req: Request, res: Response, detail: string): void {
  console.error(`[${logName}] request ${requestIdOf(res)} ${req.method} ${req.path}: ${detail}`);
}

/**
 * Express error middleware: 400 for BadRequest and unparsable JSON, 413 for a body over the limit,
 * 503 (Retry-After) when PostgreSQL is unavailable, else 500.
 */
export function apiErrorHandler(
  logName: string,
): (err: unknown, req: Request, res: Response, next: NextFunction) => void {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err instanceof BadRequest) return sendApiError(res, 400, err.code, err.message);
    const e = err as { type?: string };
    if (e.type === 'entity.parse.failed')
      return sendApiError(res, 400, 'bad_json', 'the request body is not valid JSON');
    if (e.type === 'entity.too.large')
      return sendApiError(res, 413, 'too_large', 'the request body is too large');
    if (isDatabaseUnavailable(err)) {
      // PostgreSQL away, hung or past the statement deadline: retry later, not a server bug.
      logRequest(logName, req, res, `database unavailable: ${(err as Error).message}`);
      res.setHeader('retry-after', '5');
      return sendApiError(res, 503, 'unavailable', 'the database is unavailable right now; retry later');
    }
    logRequest(logName, req, res, `failed: ${(err as Error)?.stack ?? String(err)}`);
    sendApiError(res, 500, 'internal', 'internal error; the server log has the details under the request id');
  };
}

/**
 * `value` checked by `schema`, or a BadRequest naming each problem. The code is that of the first
 * problem's field in `codes` (e.g. `{from: 'invalid_time'}`), else `fallbackCode`.
 */
export function validate<S extends z.ZodType>(
  schema: S,
  value: unknown,
  codes: Record<string, string> = {},
  fallbackCode = 'bad_request',
): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0];
  const code = (first && codes[String(first.path[0])]) ?? fallbackCode;
  const message = r.error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  throw new BadRequest(code, message);
}
