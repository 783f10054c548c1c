// The one HTTP server of the click service: `/c/…` goes straight to the lean click handler,
// everything else to the Express app (API, health, metrics). Express never sees a click.
import { createServer, type Server } from 'node:http';
import type { Express } from 'express';
import type { ClickRequestHandler } from './click-handler.js';

export function createHttpServer(click: ClickRequestHandler, app: Express): Server {
  const server = createServer((req, res) => {
    if (req.url !== undefined && req.url.startsWith('/c/')) click(req, res);
    else app(req, res);
  });
  // Load balancers and load generators hold connections open; Node's 5 s default closes them
  // under a client that pauses, and each reconnect costs more than a click.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}
