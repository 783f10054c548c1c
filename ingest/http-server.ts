// The one HTTP server of the click service: `/c/…` goes straight to the lean click handler,
// everything else to the Express app (API, health, metrics). Express never sees a click. With the
// click front (the default), plain click requests are read and answered without node:http's
// request and response objects, and node:http reads every other request (ingest/click-front.ts).
import { createServer, type Server } from 'node:http';
import type { Express } from 'express';
import type { ClickRequestHandler } from './click-handler.js';
import { installClickFront, type ClickFront } from './click-front.js';

// Load balancers and load generators hold connections open; Node's 5 s default closes them
// under a client that pauses, and each reconnect costs more than a click.
const KEEP_ALIVE_MS = 65_000;
const HEADERS_MS = 66_000;

export function createHttpServer(
  click: ClickRequestHandler,
  app: Express,
  options: { front: boolean } = { front: true },
): { server: Server; front?: ClickFront } {
  const server = createServer((req, res) => {
    if (req.url !== undefined && req.url.startsWith('/c/')) click(req, res);
    else app(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = HEADERS_MS;
  if (!options.front) return { server };
  const front = installClickFront(server, click, { idleMs: KEEP_ALIVE_MS, headDeadlineMs: HEADERS_MS });
  return { server, front };
}
