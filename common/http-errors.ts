// The API's error shape (`{"error": {"code", "message"}}`) and the one Express error handler every
// router ends with: a bad request says what to fix; anything unexpected is logged here and answered
// with a generic 500, so no internal detail (SQL, hosts, stack traces) reaches a client.
import type { NextFunction, Request, Response } from 'express';

/** A client error: answered `400` with its code and message. */
export class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Writes `{"error": {"code", "message"}}` with `status`. */
export function sendApiError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** Express error middleware: 400 for BadRequest and unparsable JSON, 413 for a body over the limit, else 500. */
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
    console.error(`[${logName}] ${req.method} ${req.path} failed:`, err);
    sendApiError(res, 500, 'internal', 'internal error; the server log has the details');
  };
}
