// Pinot's client (common/pinot.ts) keeps its deadline against a broker that hangs: one that takes
// the connection and never answers, and one that sends its headers and then stalls in the body.
// The API's provisional counts and the speed layer's Pinot calls wait at most this long. A local
// socket stands in for the hung broker (the fault matrix hangs the real one with SIGSTOP).
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { query } from '../../common/pinot.js';

const sockets = new Set<Socket>();
const servers: Server[] = [];

/** A server on a free local port that does `onConnection` with each connection; its base URL. */
async function hungBroker(onConnection: (socket: Socket) => void): Promise<string> {
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

async function elapsed(p: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t0 = performance.now();
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { ms: performance.now() - t0, error };
}

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('Pinot calls under a hung broker', () => {
  it('a broker that never answers: the query fails at its deadline', async () => {
    const brokerUrl = await hungBroker(() => undefined);
    const { ms, error } = await elapsed(query('select 1 from t', { brokerUrl, timeoutMs: 300 }));
    expect(error).toBeInstanceOf(Error);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
  });

  it('a broker that stalls in the middle of its body: the query fails at its deadline', async () => {
    const brokerUrl = await hungBroker((socket) => {
      socket.once('data', () =>
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"resultTable":',
        ),
      );
    });
    const { ms, error } = await elapsed(query('select 1 from t', { brokerUrl, timeoutMs: 300 }));
    expect(error).toBeInstanceOf(Error);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
  });
});
