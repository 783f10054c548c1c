// Prometheus metrics: one registry per process, served as text at /metrics by the process's HTTP
// server (or by a small standalone one for workers without their own).
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export async function metricsText(): Promise<string> {
  return registry.metrics();
}

/** Serves /metrics (and /healthz) on `port`, for processes with no HTTP API of their own. */
export function serveMetrics(port: number, host = '127.0.0.1'): Server {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(e.message),
    );
  });
  server.listen(port, host);
  return server;
}
