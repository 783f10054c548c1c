// The click route's own reading of HTTP/1.1, in front of node:http on the same listening server.
//
// node:http builds an IncomingMessage and a ServerResponse (two streams, a header object, timers,
// events) for every request; for a bodiless GET answered by a 302 of three headers that was a third
// of the click process's CPU (docs/click-front.md has the measurements). This front reads requests
// off the socket itself, and only the plainest kind:
//
//   GET or HEAD, a target under /c/ of visible ASCII, HTTP/1.1, a Host, header names that are
//   tokens and values without control characters, no body (no Content-Length, no
//   Transfer-Encoding), no Expect, no Upgrade, the whole head within MAX_HEAD bytes.
//
// Anything else — another path, another method, HTTP/1.0, a body, a malformed or oversized head —
// is not judged here: the connection is handed to node:http from that request's first byte on (the
// bytes read so far are put back on the socket), and node:http keeps it to its end, with its own
// parser, limits, timeouts and error answers. So this front never answers a request node:http would
// have refused, and an attacker's odd request meets node:http's parser, as before.
//
// Requests of a connection are answered one at a time, in order (a pipelined request waits for the
// answer before it); reading pauses while the answers are not taken or while too much is buffered.
// A connection idle for IDLE_MS is closed, and a head not complete HEAD_DEADLINE_MS after its first
// byte is too (the slow-header attack), as node:http's keepAliveTimeout and headersTimeout do. Both
// are checked by one sweep of every connection (each second, in production), not by a socket timeout:
// Node refreshes a socket's timer on every read and write, 1.5 % of a click worker's CPU at 10,000
// clicks/s. A connection is closed up to one sweep after its deadline, never before it.
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { ClickRequest, ClickRequestHandler, ClickResponse } from './click-handler.js';

/** Node's default largest head (`maxHeaderSize`): a longer one goes to node:http, which answers 431. */
export const MAX_HEAD = 16 * 1024;
/** Unread bytes a connection may hold while an answer is pending before it stops reading. */
const MAX_BUFFERED = 64 * 1024;

export interface ClickFrontOptions {
  /** A connection with no request and no answer for this long is closed (node:http's keepAliveTimeout). */
  idleMs: number;
  /** A request head not complete this long after its first byte closes the connection (headersTimeout). */
  headDeadlineMs: number;
}

export interface ClickFront {
  /** Connections the front holds (not those handed to node:http). */
  readonly connections: number;
  /** Connections handed to node:http so far. */
  readonly handedOver: number;
  /** Closes the front's connections that wait for no answer; the others close after theirs. */
  closeIdle(): void;
  /** Destroys every connection the front holds. */
  closeAll(): void;
}

const CRLF2 = Buffer.from('\r\n\r\n', 'latin1');
const CLOSE = 'connection: close\r\n\r\n';
const TARGET = /^\/c\/[\x21-\x7e]*$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A field value node:http would accept and a reader cannot misread: no control character but tab.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// What node:http refuses in a header value it is asked to send (ERR_INVALID_CHAR).
const BAD_OUT_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Puts the front on `server` (an http.Server, not yet listening): each connection is read by the
 * front first; `click` answers its plain click requests, node:http everything else.
 */
export function installClickFront(
  server: Server,
  click: ClickRequestHandler,
  options: ClickFrontOptions,
): ClickFront {
  const nodeListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const open = new Set<FrontConnection>();
  const stats = { handedOver: 0 };
  const handOver = (socket: Socket) => {
    stats.handedOver++;
    for (const listener of nodeListeners) listener.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    const c = new FrontConnection(socket, click, options, handOver, () => open.delete(c));
    open.add(c);
  });
  // One sweep for idle connections and heads that take too long, instead of timers per socket.
  const sweepMs = Math.max(10, Math.min(1000, options.idleMs / 4, options.headDeadlineMs / 4));
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of open) c.checkDeadlines(now);
  }, sweepMs);
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
  return {
    get connections() {
      return open.size;
    },
    get handedOver() {
      return stats.handedOver;
    },
    closeIdle() {
      for (const c of open) c.closeWhenIdle();
    },
    closeAll() {
      for (const c of open) c.destroy();
    },
  };
}

class FrontConnection {
  private buffered: Buffer | undefined;
  /** When the first byte of a head not yet complete arrived (0: none waiting). */
  private headSince = 0;
  private answering = false;
  private reading = false;
  private closeAfter = false;
  private gone = false;
  /** When a byte last came in or an answer last went out (idle since then, unless answering). */
  private lastActive = Date.now();
  // What the front listens to on the socket: added at the start, all removed at a handover.
  private readonly listeners: Array<[string, (chunk: Buffer) => void]> = [
    ['data', (chunk: Buffer) => this.data(chunk)],
    ['end', () => this.ended()],
    ['close', () => this.closed()],
    ['drain', () => this.drained()],
    ['error', noop],
  ];
  private readonly keepAlive: string;

  constructor(
    private readonly socket: Socket,
    private readonly click: ClickRequestHandler,
    private readonly options: ClickFrontOptions,
    private readonly handOver: (socket: Socket) => void,
    private readonly forget: () => void,
  ) {
    for (const [event, listener] of this.listeners) socket.on(event, listener);
    this.keepAlive = `keep-alive: timeout=${Math.floor(options.idleMs / 1000)}\r\n\r\n`;
  }

  checkDeadlines(now: number): void {
    if (this.headSince !== 0) {
      if (now - this.headSince > this.options.headDeadlineMs) this.destroy();
    } else if (!this.answering && now - this.lastActive > this.options.idleMs) this.destroy();
  }

  closeWhenIdle(): void {
    if (this.answering) this.closeAfter = true;
    else this.finish();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    if (this.gone) return; // closing: what the client sends now is not read
    this.lastActive = Date.now();
    this.buffered = this.buffered === undefined ? chunk : Buffer.concat([this.buffered, chunk]);
    if (!this.answering && !this.reading) this.next();
    else if (this.buffered.length > MAX_BUFFERED) this.socket.pause();
  }

  /** Reads and answers the buffered requests, one at a time, until one waits for its answer. */
  private next(): void {
    this.reading = true;
    try {
      // A client that does not take its answers is read no further until they drain (drained()).
      while (!this.answering && !this.gone && this.buffered !== undefined && !this.socket.writableNeedDrain) {
        const buf = this.buffered;
        const end = buf.indexOf(CRLF2);
        if (end === -1) {
          if (buf.length > MAX_HEAD || !plainSoFar(buf)) return this.toNode();
          if (this.headSince === 0) this.headSince = Date.now();
          break;
        }
        this.headSince = 0;
        const req = end + 4 > MAX_HEAD ? undefined : parseHead(buf.toString('latin1', 0, end), this.socket);
        if (req === undefined) return this.toNode();
        this.buffered = end + 4 === buf.length ? undefined : buf.subarray(end + 4);
        if (req.close) this.closeAfter = true;
        this.answering = true;
        try {
          this.click(
            req,
            new FrontResponse(this, req.method === 'HEAD', this.closeAfter ? CLOSE : this.keepAlive),
          );
        } catch {
          // An answer that cannot be written (a header value node:http would refuse too) ends this
          // connection only: nothing of it was sent.
          this.gone = true;
          this.socket.destroy();
          return;
        }
      }
      if (this.answering || this.gone) return;
      if (this.socket.isPaused() && !this.socket.writableNeedDrain) this.socket.resume();
    } finally {
      this.reading = false;
    }
  }

  /** An answer was written: close if asked, else read the next request (later, if the client is slow to take answers). */
  answered(): void {
    this.answering = false;
    this.lastActive = Date.now();
    if (this.closeAfter) return this.finish();
    if (this.socket.writableNeedDrain) {
      this.socket.pause();
      return;
    }
    if (!this.reading) this.next();
  }

  /** Closes the connection once what was written is sent (as node:http's destroySoon). */
  private finish(): void {
    this.gone = true;
    this.headSince = 0;
    this.buffered = undefined;
    const socket = this.socket;
    socket.end();
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  }

  write(text: string, body: string | undefined): void {
    if (!this.socket.writable) return;
    if (body === undefined) this.socket.write(text, 'latin1');
    else {
      this.socket.cork();
      this.socket.write(text, 'latin1');
      this.socket.write(body, 'utf8');
      this.socket.uncork();
    }
  }

  private drained(): void {
    if (!this.answering && !this.reading && !this.gone) this.next();
  }

  private ended(): void {
    // The client sends no more: as node:http does (its httpAllowHalfOpen is false), the connection
    // is closed now, and an answer still pending is dropped.
    this.finish();
  }

  private closed(): void {
    this.gone = true;
    this.forget();
  }

  /** Hands the connection, from the first unanswered byte on, to node:http. */
  private toNode(): void {
    const socket = this.socket;
    this.gone = true;
    this.forget();
    for (const [event, listener] of this.listeners) socket.removeListener(event, listener);
    socket.pause();
    if (this.buffered !== undefined) socket.unshift(this.buffered);
    this.buffered = undefined;
    this.handOver(socket);
    socket.resume();
  }
}

/**
 * Whether a head not yet complete can still be a plain click request: it starts as one and has no
 * line end but CR LF. Anything else goes to node:http at once, which answers (or waits) as it would.
 */
function plainSoFar(buf: Buffer): boolean {
  const start = buf.toString('latin1', 0, Math.min(buf.length, 8));
  if (!'GET /c/'.startsWith(start.slice(0, 7)) && !'HEAD /c/'.startsWith(start)) return false;
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1))
    if (i === 0 || buf[i - 1] !== 13) return false;
  return true;
}

interface FrontRequest extends ClickRequest {
  method: 'GET' | 'HEAD';
  url: string;
  close: boolean;
}

/** The request a head of the plainest kind states; undefined for any other head (node:http reads it). */
function parseHead(head: string, socket: Socket): FrontRequest | undefined {
  const lineEnd = head.indexOf('\r\n');
  if (lineEnd === -1) return undefined;
  const line = head.slice(0, lineEnd);
  const method = line.startsWith('GET ') ? 'GET' : line.startsWith('HEAD ') ? 'HEAD' : undefined;
  if (method === undefined) return undefined;
  const at = method.length + 1;
  if (!line.endsWith(' HTTP/1.1')) return undefined;
  const url = line.slice(at, line.length - 9);
  if (!TARGET.test(url)) return undefined;
  const headers: { 'user-agent'?: string; referer?: string; 'x-forwarded-for'?: string } = {};
  let host = false;
  let close = false;
  let from = lineEnd + 2;
  while (from < head.length) {
    let to = head.indexOf('\r\n', from);
    if (to === -1) to = head.length;
    const field = head.slice(from, to);
    from = to + 2;
    const colon = field.indexOf(':');
    if (colon <= 0) return undefined;
    const name = field.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    const value = field.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return undefined;
    switch (name.toLowerCase()) {
      case 'host':
        if (host) return undefined;
        host = true;
        break;
      case 'user-agent':
        headers['user-agent'] ??= value;
        break;
      case 'referer':
        headers.referer ??= value;
        break;
      case 'x-forwarded-for': // several are one list, as node:http joins them
        headers['x-forwarded-for'] =
          headers['x-forwarded-for'] === undefined ? value : `${headers['x-forwarded-for']}, ${value}`;
        break;
      case 'connection': {
        for (const token of value.toLowerCase().split(',')) {
          const t = token.trim();
          if (t === 'close') close = true;
          else if (t === 'upgrade') return undefined;
        }
        break;
      }
      case 'content-length':
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return undefined;
    }
  }
  if (!host) return undefined;
  return { method, url, headers, socket, close };
}

/** The answer to one request of the front: written whole, in one write, by `end`. */
class FrontResponse implements ClickResponse {
  headersSent = false;
  private ended = false;
  private extra = '';
  private head = '';

  constructor(
    private readonly connection: FrontConnection,
    private readonly noBody: boolean,
    /** The head's last field and its end: the connection's close, or how long it is kept. */
    private readonly ending: string,
  ) {}

  setHeader(name: string, value: string): void {
    if (this.headersSent) throw new Error('headers already sent');
    this.extra += field(name, value);
  }

  writeHead(status: number, headers: readonly string[] | Record<string, string | number>): void {
    if (this.headersSent) throw new Error('headers already sent');
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n${this.extra}`;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) text += field(headers[i]!, headers[i + 1]!);
    } else for (const [name, value] of Object.entries(headers)) text += field(name, String(value));
    text += `date: ${httpDate()}\r\n`;
    text += this.ending;
    this.head = text;
    this.headersSent = true;
  }

  end(body?: string): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.headersSent) this.writeHead(200, []);
    this.connection.write(this.head, this.noBody || body === undefined || body === '' ? undefined : body);
    this.connection.answered();
  }
}

function field(name: string, value: string): string {
  if (!TOKEN.test(name)) throw new Error(`invalid header name ${JSON.stringify(name)}`);
  if (BAD_OUT_VALUE.test(value)) throw new Error(`invalid character in header ${name}`);
  return `${name}: ${value}\r\n`;
}

let dateAt = 0;
let dateText = '';
/** The Date header's value, made once a second (as node:http does). */
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000 || now < dateAt) {
    dateAt = now - (now % 1000);
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

function noop(): void {}
