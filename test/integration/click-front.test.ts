// The click front (ingest/click-front.ts) against node:http: each exchange of raw bytes is sent to a
// server with the front and to the same server without it, and the answers must agree (status,
// headers but the per-answer Date/Connection/Keep-Alive, body, and whether the connection closes).
// The handler stands in for the click route (it answers as the route does: a 302 with a flat header
// list, an error with an object, HEAD without a body, after a delay the request chooses), so these
// exchanges test the HTTP reading, not the click's judgement: the click's own tests run over the
// front as `npm start` runs it.
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickRequestHandler } from '../../ingest/click-handler.js';
import { installClickFront, MAX_HEAD, type ClickFront } from '../../ingest/click-front.js';
import { createHttpServer } from '../../ingest/http-server.js';

/** A route like the click route: `/c/<id>[?wait=ms]`; id `bad` is a 400, `crlf` a Location that cannot be sent. */
const handler: ClickRequestHandler = (req, res) => {
  const url = new URL(req.url!, 'http://x');
  const id = url.pathname.slice(3);
  const answer = () => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      const body = JSON.stringify({ error: { code: 'method_not_allowed' } });
      res.writeHead(405, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (id === 'bad') {
      const body = JSON.stringify({ error: { code: 'bad_ad_id', message: 'ünïcode' } });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else {
      const location =
        id === 'crlf'
          ? 'https://ads.example/\r\nset-cookie: x=1'
          : `https://ads.example/${id}?ua=${encodeURIComponent(req.headers['user-agent'] ?? '')}` +
            `&ref=${encodeURIComponent(req.headers.referer ?? '')}&ip=${req.socket.remoteAddress ?? ''}` +
            `&xff=${encodeURIComponent(req.headers['x-forwarded-for'] ?? '')}`;
      res.writeHead(302, ['location', location, 'cache-control', 'no-store', 'content-length', '0']);
      res.end();
    }
  };
  const wait = Number(url.searchParams.get('wait') ?? 0);
  if (wait > 0) setTimeout(answer, wait);
  else answer();
};

function app() {
  const a = express();
  a.get('/health', (_req, res) => res.json({ ok: true }));
  a.use((_req, res) => res.status(404).json({ error: { code: 'not_found' } }));
  return a;
}

interface Pair {
  front: { server: Server; front: ClickFront; port: number };
  node: { server: Server; port: number };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

let pair: Pair;
beforeAll(async () => {
  const f = createHttpServer(handler, app(), { front: true });
  const n = createHttpServer(handler, app(), { front: false });
  pair = {
    front: { server: f.server, front: f.front!, port: await listen(f.server) },
    node: { server: n.server, port: await listen(n.server) },
  };
});
afterAll(async () => {
  for (const s of [pair.front.server, pair.node.server]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

interface Exchange {
  raw: string;
  closed: boolean;
}

/** Sends `parts` (waiting `gapMs` between them), then reads until the server closes or `quietMs` pass with nothing. */
async function exchange(
  port: number,
  parts: Array<string | Buffer>,
  opts: { gapMs?: number; quietMs?: number; halfClose?: boolean } = {},
): Promise<Exchange> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const chunks: Buffer[] = [];
  let closed = false;
  let last = Date.now();
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    last = Date.now();
  });
  socket.on('error', () => undefined);
  const done = new Promise<void>((r) => socket.once('close', () => ((closed = true), r())));
  for (const [i, p] of parts.entries()) {
    if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
    socket.write(p);
  }
  if (opts.halfClose) socket.end();
  const quiet = opts.quietMs ?? 300;
  while (!closed && Date.now() - last < quiet) await new Promise((r) => setTimeout(r, 20));
  await Promise.race([done, new Promise((r) => setTimeout(r, 10))]);
  socket.destroy();
  return { raw: Buffer.concat(chunks).toString('utf8'), closed };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The answers in a raw exchange, without the headers that differ per answer or per server; `heads`: the answers to HEAD requests. */
function answers(raw: string, heads: number[] = []): Answer[] {
  const out: Answer[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) throw new Error(`an answer without the end of its head: ${JSON.stringify(rest)}`);
    const [line, ...fields] = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(line!)?.[1]);
    const headers: Record<string, string> = {};
    for (const f of fields) {
      const c = f.indexOf(':');
      const name = f.slice(0, c).toLowerCase();
      if (['date', 'connection', 'keep-alive', 'x-request-id', 'etag'].includes(name)) continue;
      headers[name] = f.slice(c + 1).trim();
    }
    const length = heads.includes(out.length) ? 0 : Number(headers['content-length'] ?? 0);
    const bodyBytes = Buffer.from(rest.slice(end + 4), 'utf8').subarray(0, length);
    const body = bodyBytes.toString('utf8');
    out.push({ status, headers, body });
    rest = rest.slice(end + 4 + body.length);
  }
  return out;
}

/** The same exchange with both servers: their answers, and whether each closed the connection. */
async function both(
  parts: Array<string | Buffer>,
  opts: Parameters<typeof exchange>[2] & { heads?: number[] } = {},
) {
  const [f, n] = await Promise.all([
    exchange(pair.front.port, parts, opts),
    exchange(pair.node.port, parts, opts),
  ]);
  return {
    front: f,
    node: n,
    frontAnswers: answers(f.raw, opts.heads),
    nodeAnswers: answers(n.raw, opts.heads),
  };
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nhost: x\r\n${extra}\r\n`;

describe('the click front answers as node:http does', () => {
  it('a plain click: a 302 to the Location the route chose, with its headers, on a connection kept open', async () => {
    const r = await both([get('/c/42', 'user-agent: curl/8\r\nreferer: https://pub.example/a\r\n')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers).toEqual([
      {
        status: 302,
        headers: {
          location: 'https://ads.example/42?ua=curl%2F8&ref=https%3A%2F%2Fpub.example%2Fa&ip=127.0.0.1&xff=',
          'cache-control': 'no-store',
          'content-length': '0',
        },
        body: '',
      },
    ]);
    expect(r.front.raw).toMatch(/\r\ndate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n/i);
    expect([r.front.closed, r.node.closed]).toEqual([false, false]);
  });

  it('X-Forwarded-For given twice is one list, in order, as node:http joins it', async () => {
    const r = await both([get('/c/43', 'x-forwarded-for: 198.51.100.1\r\nx-forwarded-for: 203.0.113.7\r\n')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers[0]!.headers.location).toContain('&xff=198.51.100.1%2C%20203.0.113.7');
  });

  it('pipelined requests are answered in the order sent, whatever order their answers are ready in', async () => {
    const r = await both([get('/c/1?wait=60') + get('/c/2') + get('/c/3?wait=20') + get('/c/bad')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers.map((a) => a.status)).toEqual([302, 302, 302, 400]);
    expect(r.frontAnswers.slice(0, 3).map((a) => a.headers.location?.slice(0, 22))).toEqual([
      'https://ads.example/1?',
      'https://ads.example/2?',
      'https://ads.example/3?',
    ]);
    expect(r.frontAnswers[3]!.body).toBe(
      JSON.stringify({ error: { code: 'bad_ad_id', message: 'ünïcode' } }),
    );
  });

  it('a request split over many writes, one byte at a time at first', async () => {
    const req = get('/c/7', 'user-agent: slow\r\n');
    const parts = [...req.slice(0, 20).split(''), req.slice(20)];
    const r = await both(parts, { gapMs: 2 });
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers.map((a) => a.status)).toEqual([302]);
  });

  it('HEAD: the head of the answer and no body, for a redirect and for an error', async () => {
    const r = await both(
      [`HEAD /c/5 HTTP/1.1\r\nhost: x\r\n\r\n` + `HEAD /c/bad HTTP/1.1\r\nhost: x\r\n\r\n` + get('/c/6')],
      { heads: [0, 1] },
    );
    expect(r.frontAnswers.map((a) => [a.status, a.body])).toEqual([
      [302, ''],
      [400, ''],
      [302, ''],
    ]);
    // The 400's content-length states the GET's body; the body is not sent.
    expect(Number(r.frontAnswers[1]!.headers['content-length'])).toBeGreaterThan(0);
    expect(r.frontAnswers.map((a) => a.headers)).toEqual(r.nodeAnswers.map((a) => a.headers));
  });

  it('Connection: close is answered, said, and the connection closed; requests after it are not read', async () => {
    const r = await both([get('/c/8', 'connection: close\r\n') + get('/c/9')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers).toHaveLength(1);
    expect(r.front.raw).toMatch(/\r\nconnection: close\r\n/i);
    expect([r.front.closed, r.node.closed]).toEqual([true, true]);
  });

  it('a client that stops sending (half-close) is closed at once, its pending answers dropped, as node:http does', async () => {
    const r = await both([get('/c/10?wait=30') + get('/c/11')], { halfClose: true });
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers).toEqual([]);
    expect([r.front.closed, r.node.closed]).toEqual([true, true]);
  });
});

describe('what the front does not read goes to node:http, from that request on', () => {
  it('another path between clicks: answered by the app, and the clicks after it by node:http', async () => {
    const before = pair.front.front.handedOver;
    const r = await both([get('/c/12?wait=30') + get('/health') + get('/c/13') + get('/nowhere')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers.map((a) => a.status)).toEqual([302, 200, 302, 404]);
    expect(r.frontAnswers[1]!.body).toBe('{"ok":true}');
    expect(pair.front.front.handedOver).toBe(before + 1);
  });

  it('a body: POST with a Content-Length, then a click, read by node:http alone', async () => {
    const post = `POST /c/14 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello`;
    const r = await both([get('/c/15') + post + get('/c/16')]);
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.frontAnswers.map((a) => a.status)).toEqual([302, 405, 302]);
  });

  it.each([
    [
      'chunked GET',
      `GET /c/17 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ],
    [
      'Content-Length and Transfer-Encoding both (smuggling)',
      `GET /c/18 HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    ['HTTP/1.0', `GET /c/19 HTTP/1.0\r\n\r\n`],
    ['no Host', `GET /c/20 HTTP/1.1\r\nuser-agent: x\r\n\r\n`],
    ['two Hosts', `GET /c/21 HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n`],
    ['a folded header', `GET /c/22 HTTP/1.1\r\nhost: x\r\nuser-agent: a\r\n b\r\n\r\n`],
    ['bare LF line ends', `GET /c/23 HTTP/1.1\nhost: x\n\n`],
    ['a control character in a value', `GET /c/24 HTTP/1.1\r\nhost: x\r\nuser-agent: a\x01b\r\n\r\n`],
    ['DEL in a value', `GET /c/24 HTTP/1.1\r\nhost: x\r\nuser-agent: a\x7fb\r\n\r\n`],
    [
      'obs-text in a value (read by both)',
      Buffer.from(`GET /c/24 HTTP/1.1\r\nhost: x\r\nuser-agent: caf\xe9\r\n\r\n`, 'latin1'),
    ],
    ['a space before the colon', `GET /c/25 HTTP/1.1\r\nhost : x\r\n\r\n`],
    ['a lower-case method', `get /c/26 HTTP/1.1\r\nhost: x\r\n\r\n`],
    ['a space in the target', `GET /c/27 x HTTP/1.1\r\nhost: x\r\n\r\n`],
    ['Expect: 100-continue', `GET /c/28 HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n`],
    ['Upgrade', `GET /c/29 HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n`],
    ['a head past the limit', `GET /c/30 HTTP/1.1\r\nhost: x\r\nuser-agent: ${'a'.repeat(MAX_HEAD)}\r\n\r\n`],
    ['a target past the limit, never ended', `GET /c/${'9'.repeat(MAX_HEAD + 10)}`],
    ['garbage', `\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03`],
  ])('%s: the same answer as node:http', async (_name, request) => {
    // After a click answered on the connection (in a write of its own: node:http, given both in one
    // read, drops the error answer while the first answer is still on its way).
    const r = await both([get('/c/1'), request], { gapMs: 100, quietMs: 400 });
    expect(r.frontAnswers).toEqual(r.nodeAnswers);
    expect(r.front.closed).toBe(r.node.closed);
    expect(r.frontAnswers[0]!.status).toBe(302);
  });
});

describe('the front on its own', () => {
  async function frontServer(opts: { idleMs: number; headDeadlineMs: number }) {
    const server = createTcpServer();
    // A plain net server stands in for http.Server's connection handling: whatever the front
    // hands over is closed at once, so a test sees the front's own behaviour.
    server.on('connection', (s: Socket) => s.destroy());
    const front = installClickFront(server as unknown as Server, handler, opts);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, front, port: (server.address() as AddressInfo).port };
  }

  /** Runs `test` on a front of its own, closed after it whatever happens. */
  async function withFront(
    opts: { idleMs: number; headDeadlineMs: number },
    test: (s: Awaited<ReturnType<typeof frontServer>>) => Promise<void>,
  ) {
    const s = await frontServer(opts);
    try {
      await test(s);
    } finally {
      s.front.closeAll();
      s.server.close();
    }
  }

  it('closes a connection whose head is not complete in time (slow headers), however it trickles', async () => {
    await withFront({ idleMs: 60_000, headDeadlineMs: 1000 }, async (s) => {
      const socket = connect(s.port, '127.0.0.1');
      socket.on('error', () => undefined);
      const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
      const started = Date.now();
      const drip = setInterval(() => socket.write('x'), 100);
      socket.write('GET /c/1 HTTP/1.1\r\nhost: x\r\nuser-agent: ');
      const at = await closed;
      clearInterval(drip);
      expect(at - started).toBeGreaterThanOrEqual(1000);
      expect(at - started).toBeLessThan(3500);
    });
  });

  it('closes an idle connection, and keeps one that keeps clicking', async () => {
    await withFront({ idleMs: 600, headDeadlineMs: 60_000 }, async (s) => {
      const idle = await exchange(s.port, [get('/c/1')], { quietMs: 1500 });
      expect(idle.closed).toBe(true);
      const busy = await exchange(
        s.port,
        Array.from({ length: 8 }, (_, i) => get(`/c/${i}`)),
        {
          gapMs: 200,
          quietMs: 100,
        },
      );
      expect(busy.closed).toBe(false);
      expect(answers(busy.raw).map((a) => a.status)).toEqual(Array(8).fill(302));
    });
  });

  it('a Location that cannot be sent (CR LF in it) closes that connection only; the server goes on', async () => {
    await withFront({ idleMs: 60_000, headDeadlineMs: 60_000 }, async (s) => {
      const bad = await exchange(s.port, [get('/c/crlf') + get('/c/2')]);
      expect(bad.raw).not.toContain('set-cookie');
      expect(bad.closed).toBe(true);
      const good = await exchange(s.port, [get('/c/3')]);
      expect(answers(good.raw).map((a) => a.status)).toEqual([302]);
    });
  });

  it('closeIdle closes waiting connections at once and busy ones after their answer', async () => {
    const s = await frontServer({ idleMs: 60_000, headDeadlineMs: 60_000 });
    try {
      const idle = exchange(s.port, [get('/c/1')], { quietMs: 5000 });
      const busy = exchange(s.port, [get('/c/2?wait=400')], { quietMs: 5000 });
      await new Promise((r) => setTimeout(r, 150));
      expect(s.front.connections).toBe(2);
      s.front.closeIdle();
      const [i, b] = await Promise.all([idle, busy]);
      expect([i.closed, b.closed]).toEqual([true, true]);
      expect(answers(b.raw).map((a) => a.status)).toEqual([302]);
      expect(s.front.connections).toBe(0);
    } finally {
      s.server.close();
    }
  });
});
