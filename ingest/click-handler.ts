// The lean click route `GET /c/:adId?imp&exp&sig`, on plain node:http (no Express: its per-request
// cost alone would eat the latency budget). Every dependency is injected. Answers:
//   400 malformed ad id · 404 unknown ad (nothing logged) · 302 to the ad's registered URL for
//   every known ad, whatever the impression says · 503 if the click cannot be logged durably.
// The Location is always the URL stored with the ad; nothing from the request can change it.
import { createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CLICK_EVENT_VERSION, saltOf, type ClickEvent, type ClickStatus } from '../common/click-event.js';
import type { AdCache, CachedAd } from './ad-cache.js';
import type { Destination } from './click-log.js';
import type { DedupStore } from './dedup.js';
import { checkImpression, isImpressionId } from './impression.js';
import type { ClickMetrics, ClickOutcome } from './metrics.js';

export interface ClickHandlerDeps {
  ads: AdCache;
  dedup: DedupStore;
  clickLog: { append(event: ClickEvent): Promise<Destination> };
  signingSecret: string;
  /** Key salts per ad (rule 7). */
  salts: number;
  metrics: ClickMetrics;
  now?: () => number;
}

export type ClickRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const AD_ID = /^[1-9][0-9]{0,17}$/;
const PREFIX = '/c/';

export function createClickHandler(deps: ClickHandlerDeps): ClickRequestHandler {
  const now = deps.now ?? Date.now;
  const { metrics } = deps;
  // Label children bound once: a labelled inc() hashes its label object on every call.
  const outcomes = new Map<ClickOutcome, { inc(): void }>();
  const count = (outcome: ClickOutcome): void => {
    let c = outcomes.get(outcome);
    if (!c) outcomes.set(outcome, (c = metrics.clicks.labels(outcome)));
    c.inc();
  };

  // Keyed, so the hash cannot be reversed by hashing the IPv4 space; remembered per address, as
  // one client (or proxy) sends many clicks.
  const ipHashes = new Map<string, string>();
  function ipHash(req: IncomingMessage): string | undefined {
    const ip = req.socket.remoteAddress;
    if (!ip) return undefined;
    let h = ipHashes.get(ip);
    if (!h) {
      h = createHmac('sha256', deps.signingSecret).update(ip).digest('base64url').slice(0, 16);
      if (ipHashes.size >= 10_000) ipHashes.clear();
      ipHashes.set(ip, h);
    }
    return h;
  }

  async function log(req: IncomingMessage, res: ServerResponse, adId: string, ad: CachedAd, query: string) {
    const ts = now();
    const params = new URLSearchParams(query);
    const imp = params.get('imp');
    const exp = params.get('exp');
    const check = checkImpression(deps.signingSecret, adId, imp, exp, params.get('sig'), ts);
    let status: ClickStatus = check === 'ok' ? 'valid' : check;
    if (check === 'ok') {
      const answer = await deps.dedup.firstClick(imp!, Number(exp) - ts);
      if (answer === 'duplicate') status = 'duplicate';
      else if (answer === 'unavailable') metrics.redisFailOpen.inc();
    }
    const eventId = imp && isImpressionId(imp) ? imp : randomUUID();
    const event: ClickEvent = {
      v: CLICK_EVENT_VERSION,
      eventId,
      adId,
      advertiserId: ad.advertiserId,
      ts,
      status,
      salt: saltOf(eventId, deps.salts),
    };
    const ua = req.headers['user-agent'];
    if (ua) event.userAgent = ua.slice(0, 256);
    const ip = ipHash(req);
    if (ip) event.ipHash = ip;
    const referrer = req.headers.referer;
    if (referrer) event.referrer = referrer.slice(0, 512);
    try {
      await deps.clickLog.append(event);
    } catch {
      error(res, 503, 'log_unavailable', 'the click could not be logged; try again');
      return;
    }
    count(status);
    redirect(res, ad.redirectUrl);
  }

  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    adId: string,
    ad: CachedAd | undefined,
    query: string,
  ) {
    if (!ad) {
      count('unknown_ad');
      error(res, 404, 'not_found', `no ad ${adId}`);
      return;
    }
    // HEAD (link previews, prefetchers) learns the target but is not a click.
    if (req.method === 'HEAD') {
      redirect(res, ad.redirectUrl);
      return;
    }
    log(req, res, adId, ad, query).catch(() => error(res, 500, 'internal', 'click handling failed'));
  }

  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const adId = url.slice(PREFIX.length, q === -1 ? undefined : q);
    if (!AD_ID.test(adId)) {
      count('malformed');
      error(res, 400, 'bad_ad_id', 'the ad id must be a positive decimal integer');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      error(res, 405, 'method_not_allowed', 'clicks are GET requests');
      return;
    }
    const query = q === -1 ? '' : url.slice(q + 1);
    const cached = deps.ads.peek(adId);
    if (cached !== undefined) {
      answer(req, res, adId, cached ?? undefined, query);
      return;
    }
    deps.ads.get(adId).then(
      (ad) => answer(req, res, adId, ad, query),
      () => error(res, 503, 'catalogue_unavailable', 'the ad catalogue cannot be read; try again'),
    );
  };
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location, 'cache-control': 'no-store', 'content-length': '0' });
  res.end();
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) return;
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
