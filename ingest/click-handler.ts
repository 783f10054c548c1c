// The lean click route `GET /c/:adId?imp&exp&sig`, behind the click front (ingest/click-front.ts) or
// on plain node:http, never Express (its per-request cost alone would eat the latency budget).
// Every dependency is injected. Answers:
//   400 malformed ad id · 404 unknown ad (nothing logged) · 302 to the ad's registered URL for
//   every known ad, whatever the impression says · 503 if the click cannot be logged durably.
// The Location is always the URL stored with the ad; nothing from the request can change it.
// Forged clicks stay cheap: the signature (and key id) is checked before Redis is asked anything, so
// a bad one costs no Redis call. The ad comes from the host's catalogue replica (ingest/ad-cache.ts),
// never from PostgreSQL, except for a click signed for an ad the replica does not know yet: that
// one asks PostgreSQL under a short deadline, and only then is a 404 (an unsigned or forged click
// on an unknown id is a 404 at once, without touching PostgreSQL).
// An error answer carries a request id (body and X-Request-Id), and the log line the same id.
import { createHmac, randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { CLICK_EVENT_VERSION, saltOf, type ClickEvent, type ClickStatus } from '../common/click-event.js';
import type { AdCache, CachedAd } from './ad-cache.js';
import type { Destination } from './click-log.js';
import type { DedupStore } from './dedup.js';
import { checkImpression, isImpressionId, parseClickQuery, type SigningKeys } from './impression.js';
import type { ClickMetrics, ClickOutcome } from './metrics.js';
import { isId } from '../common/ids.js';

export interface ClickHandlerDeps {
  ads: AdCache;
  dedup: DedupStore;
  clickLog: {
    append(event: ClickEvent): Promise<Destination>;
    /** A click is on its way to append, and it has arrived (see ClickLog.announce). */
    announce?(): void;
    arrived?(): void;
  };
  signingKeys: SigningKeys;
  /** Key salts per ad (rule 7). */
  salts: number;
  metrics: ClickMetrics;
  now?: () => number;
  /**
   * Proxies in front that set X-Forwarded-For (0: none; the connection's address is the client's).
   * The address hashed into a click's ipHash is taken that many hops from the right, as Express's
   * numeric `trust proxy` does: a client cannot choose it by sending the header itself.
   */
  trustedProxyHops?: number;
  /** Where error details go, under the request id of the answer (default: console.error). */
  log?: (message: string) => void;
}

/** What the route reads of a request: node:http's IncomingMessage, or the click front's own (ingest/click-front.ts). */
export interface ClickRequest {
  readonly method?: string;
  readonly url?: string;
  readonly headers: {
    readonly 'user-agent'?: string;
    readonly referer?: string;
    readonly 'x-forwarded-for'?: string;
  };
  readonly socket: { readonly remoteAddress?: string };
}

/** What the route does with an answer: node:http's ServerResponse, or the click front's own. */
export interface ClickResponse {
  readonly headersSent: boolean;
  setHeader(name: string, value: string): unknown;
  writeHead(status: number, headers: string[] | Record<string, string | number>): unknown;
  end(body?: string): unknown;
}

export type ClickRequestHandler = (req: ClickRequest, res: ClickResponse) => void;

const PREFIX = '/c/';

export function createClickHandler(deps: ClickHandlerDeps): ClickRequestHandler {
  const route = new ClickRoute(deps);
  return (req, res) => route.handle(req, res);
}

class ClickRoute {
  private readonly now: () => number;
  // Label children bound once: a labelled inc() hashes its label object on every call.
  private readonly outcomes = new Map<ClickOutcome, { inc(): void }>();
  private readonly codes = new Map<number, { inc(): void }>();
  // Keyed, so the hash cannot be reversed by hashing the IPv4 space; remembered per address, as
  // one client (or proxy) sends many clicks.
  private readonly ipHashes = new LRUCache<string, string>({ max: 10_000 });

  private readonly error: (
    res: ClickResponse,
    status: number,
    code: string,
    message: string,
    detail?: string,
  ) => void;

  constructor(private readonly deps: ClickHandlerDeps) {
    this.now = deps.now ?? Date.now;
    const log = deps.log ?? ((m: string) => console.error(m));
    this.error = (res, status, code, message, detail) => {
      this.respond(status);
      const requestId = error(res, status, code, message);
      if (status >= 500 && requestId)
        log(`[click] request ${requestId}: ${status} ${code}${detail ? `: ${detail}` : ''}`);
    };
  }

  /** Checks the ad id and method, then answers from the replica (or after the signed-click fallback). */
  handle(req: ClickRequest, res: ClickResponse): void {
    const start = performance.now();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const adId = url.slice(PREFIX.length, q === -1 ? undefined : q);
    if (!isId(adId)) {
      this.count('malformed');
      this.error(res, 400, 'bad_ad_id', 'the ad id must be a positive decimal integer');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      this.error(res, 405, 'method_not_allowed', 'clicks are GET requests');
      return;
    }
    const query = q === -1 ? '' : url.slice(q + 1);
    const cached = this.deps.ads.peek(adId);
    // An id the replica does not know may have been created since its last change: a click signed
    // for it proves it exists, as impressions are issued only for existing ads, so PostgreSQL is
    // asked (under a deadline). Unsigned clicks on unknown ids stay cheap: a 404, no query.
    if (cached || !this.signedFor(adId, query)) {
      this.answer(req, res, adId, cached ?? undefined, query, start);
      return;
    }
    this.deps.ads.get(adId).then(
      (ad) => this.answer(req, res, adId, ad, query, start),
      (e: Error) =>
        this.error(
          res,
          503,
          'catalogue_unavailable',
          'the ad catalogue cannot be read; try again',
          e.message,
        ),
    );
  }

  /** Whether the click carries our signature for this ad (expired or not). */
  private signedFor(adId: string, query: string): boolean {
    const q = parseClickQuery(query);
    const check = checkImpression(this.deps.signingKeys, adId, q.imp, q.exp, q.sig, this.now(), q.kid);
    return check !== 'bad_signature';
  }

  private answer(
    req: ClickRequest,
    res: ClickResponse,
    adId: string,
    ad: CachedAd | undefined,
    query: string,
    start: number,
  ) {
    if (!ad) {
      this.count('unknown_ad');
      this.error(res, 404, 'not_found', `no ad ${adId}`);
      return;
    }
    // HEAD (link previews, prefetchers) learns the target but is not a click.
    if (req.method === 'HEAD') {
      this.respond(302);
      redirect(res, ad.redirectUrl);
      return;
    }
    this.log(req, res, adId, ad, query, start).catch((e: Error) =>
      this.error(res, 500, 'internal', 'click handling failed', e.stack ?? e.message),
    );
  }

  /** Judges the impression, logs the click durably, then redirects (503 when it cannot be logged). */
  private async log(
    req: ClickRequest,
    res: ClickResponse,
    adId: string,
    ad: CachedAd,
    query: string,
    start: number,
  ) {
    const ts = this.now();
    const { imp, exp, sig, kid } = parseClickQuery(query);
    const check = checkImpression(this.deps.signingKeys, adId, imp, exp, sig, ts, kid);
    let status: ClickStatus = check === 'ok' ? 'valid' : check;
    if (check === 'ok') {
      // While this click waits for Redis, a batch about to leave the click log may wait for it.
      this.deps.clickLog.announce?.();
      const asked = performance.now();
      try {
        const answer = await this.deps.dedup.firstClick(imp!, Number(exp) - ts);
        this.deps.metrics.dedupSeconds.observe((performance.now() - asked) / 1000);
        if (answer === 'duplicate') status = 'duplicate';
        else if (answer === 'unavailable') this.deps.metrics.redisFailOpen.inc();
      } finally {
        this.deps.clickLog.arrived?.();
      }
    }
    // An impression that checks (ok or expired) has a well-formed id: the regex is not run twice.
    const eventId = check !== 'bad_signature' || (imp && isImpressionId(imp)) ? imp! : randomUUID();
    try {
      await this.deps.clickLog.append(this.event(req, eventId, adId, ad, ts, status));
    } catch (e) {
      // Not redirected, so not a click: the dedup key this click set must not make its retry a duplicate.
      if (status === 'valid' && imp) await this.deps.dedup.forget(imp);
      this.error(
        res,
        503,
        'log_unavailable',
        'the click could not be logged; try again',
        (e as Error).message,
      );
      return;
    }
    this.count(status);
    this.respond(302);
    redirect(res, ad.redirectUrl);
    this.deps.metrics.redirectSeconds.observe((performance.now() - start) / 1000);
  }

  private event(
    req: ClickRequest,
    eventId: string,
    adId: string,
    ad: CachedAd,
    ts: number,
    status: ClickStatus,
  ): ClickEvent {
    const event: ClickEvent = {
      v: CLICK_EVENT_VERSION,
      eventId,
      adId,
      advertiserId: ad.advertiserId,
      ts,
      status,
      salt: saltOf(eventId, this.deps.salts),
    };
    const ua = req.headers['user-agent'];
    if (ua) event.userAgent = ua.slice(0, 256);
    const ip = this.ipHash(req);
    if (ip) event.ipHash = ip;
    const referrer = req.headers.referer;
    if (referrer) event.referrer = referrer.slice(0, 512);
    return event;
  }

  private ipHash(req: ClickRequest): string | undefined {
    const ip = clientAddress(req, this.deps.trustedProxyHops ?? 0);
    if (!ip) return undefined;
    let h = this.ipHashes.get(ip);
    if (!h) {
      h = createHmac('sha256', this.deps.signingKeys.current.secret)
        .update(ip)
        .digest('base64url')
        .slice(0, 16);
      this.ipHashes.set(ip, h);
    }
    return h;
  }

  private respond(code: number): void {
    let c = this.codes.get(code);
    if (!c) this.codes.set(code, (c = this.deps.metrics.responses.labels(String(code))));
    c.inc();
  }

  private count(outcome: ClickOutcome): void {
    let c = this.outcomes.get(outcome);
    if (!c) this.outcomes.set(outcome, (c = this.deps.metrics.clicks.labels(outcome)));
    c.inc();
  }
}

/** The client's address: `hops` entries of X-Forwarded-For from the right, or as many as there are. */
export function clientAddress(req: ClickRequest, hops: number): string | undefined {
  const socket = req.socket.remoteAddress;
  const header = req.headers['x-forwarded-for'];
  if (hops === 0 || header === undefined) return socket;
  const hopsSeen = header
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  // [the connection, then each proxy's entry from the nearest]: the first `hops` are trusted.
  const chain = [socket, ...hopsSeen.reverse()];
  return chain[Math.min(hops, chain.length - 1)];
}

// A flat list of names and values: node:http takes it without walking an object's keys.
function redirect(res: ClickResponse, location: string): void {
  res.writeHead(302, ['location', location, 'cache-control', 'no-store', 'content-length', '0']);
  res.end();
}

/** Answers the API's error shape with a fresh request id (returned; undefined if too late to answer). */
function error(res: ClickResponse, status: number, code: string, message: string): string | undefined {
  if (res.headersSent) return undefined;
  const requestId = randomUUID();
  const body = JSON.stringify({ error: { code, message, requestId } });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
  return requestId;
}
