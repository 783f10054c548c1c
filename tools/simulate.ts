// Traffic simulator (`npm run simulate -- ...`): creates advertisers and ads through the API, requests
// impressions and clicks them over HTTP at a given rate, with chosen shares of duplicate, expired,
// badly signed and unknown-ad clicks and one hot ad; writes the ground truth (valid first clicks per
// ad and minute) for `npm run verify`.
//
// Expired impressions are forged with the signing secret from the environment (the same one the
// click service uses): the API cannot issue an impression that is already expired.
//
// Where impressions come from (`--mint`): `api` (default) asks `POST /v1/impressions` for each one;
// `local` mints them in this process as an ad server does (docs/impressions.md): signed with the key
// `--signer-kid` and the secret in ADCLICK_SIGNER_SECRET (the click service must list that key in
// ADCLICK_SIGNING_KEYS), no request but the click itself; `--api-share` of them still come from the
// API. At thousands of clicks per second one API call per click is not what production does, and on
// a small machine it drowns the API (every request queued, none answered).
//
// Failure drills: `--clock-offset-ms` (default ADCLICK_CLOCK_OFFSET_MS, the click service's drill
// clock) puts the recorded minutes and forged expiries on the click service's shifted clock. A
// request that gets no answer (the click service was killed) is counted in `failed`, not as
// unexpected; a valid click whose connection broke after it was sent is listed in `ambiguous`.
import { writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { clickPath, newImpression, signImpression } from '../ingest/impression.js';
import {
  nearMinuteBoundary,
  recordValidClick,
  tamperedSignature,
  totalOf,
  type AmbiguousClick,
  type GroundTruth,
} from './ground-truth.js';
import { minuteOf } from '../common/time.js';
import { sleep, waitFor } from '../common/wait.js';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: `http://127.0.0.1:${config.PORT}` },
    rate: { type: 'string', default: '50' },
    duration: { type: 'string', default: '60' },
    advertisers: { type: 'string', default: '2' },
    ads: { type: 'string', default: '10' },
    duplicate: { type: 'string', default: '0.1' },
    expired: { type: 'string', default: '0.03' },
    'bad-signature': { type: 'string', default: '0.03' },
    unknown: { type: 'string', default: '0.02' },
    hot: { type: 'string', default: '0.3' },
    out: { type: 'string', default: 'ground-truth.json' },
    'clock-offset-ms': { type: 'string', default: String(config.ADCLICK_CLOCK_OFFSET_MS) },
    // No click is sent this close to a minute boundary (ms): more under heavy load or faults.
    'boundary-margin-ms': { type: 'string', default: '250' },
    quiet: { type: 'boolean', default: false },
    mint: { type: 'string', default: 'api' },
    connections: { type: 'string', default: '1000' },
    'signer-kid': { type: 'string', default: 'as1' },
    'api-share': { type: 'string', default: '0.01' },
  },
});

function num(name: keyof typeof opts, min: number, max: number): number {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max)
    throw new Error(`--${name} must be a number in [${min}, ${max}]`);
  return v;
}

const base = String(opts.base).replace(/\/$/, '');
const rate = num('rate', 1, 5000);
const durationS = num('duration', 1, 86_400);
const shares = {
  duplicate: num('duplicate', 0, 1),
  expired: num('expired', 0, 1),
  bad_signature: num('bad-signature', 0, 1),
  unknown: num('unknown', 0, 1),
};
if (Object.values(shares).reduce((a, b) => a + b, 0) >= 1)
  throw new Error('the invalid shares must add up to < 1');
const hotShare = num('hot', 0, 1);
if (opts.mint !== 'api' && opts.mint !== 'local') throw new Error('--mint must be api or local');
const signerSecret = process.env.ADCLICK_SIGNER_SECRET ?? '';
if (opts.mint === 'local' && signerSecret === '')
  throw new Error(
    '--mint local signs with ADCLICK_SIGNER_SECRET: set it (and list the key in ADCLICK_SIGNING_KEYS)',
  );
/** The ad server's key: signs the impressions this process mints itself (`--mint local`). */
const adServerKey = { id: String(opts['signer-kid']), secret: signerSecret };
const apiShare = opts.mint === 'local' ? num('api-share', 0, 1) : 1;
const clockOffsetMs = num('clock-offset-ms', -10 * 365 * 86_400_000, 0);
const boundaryMarginMs = num('boundary-margin-ms', 0, 20_000);
/** The click service's clock (shifted in failure drills): minutes and expiries are on it. */
const clock = (): number => Date.now() + clockOffsetMs;
const adminAuth = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' };

async function api<T>(method: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, { method, headers: adminAuth, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

interface ImpressionReply {
  impressionId: string;
  adId: string;
  expiresAt: string | number;
  clickUrl: string;
}

type Outcome = 'valid' | keyof typeof shares;

function pickOutcome(): Outcome {
  let r = Math.random();
  for (const [outcome, share] of Object.entries(shares) as [Outcome, number][]) {
    if (r < share) return outcome;
    r -= share;
  }
  return 'valid';
}

/**
 * The clicks' connections: kept alive and at most `--connections` of them. Open loop still: a click
 * is sent on schedule and waits here for a connection if all are busy (that wait is part of its
 * answer time). A click's answer waits for Kafka's ack (or the spool, after 300 ms), so the rate
 * needs rate × answer time connections: 2,000/s × 0.3 s is 600. One new connection per click, as
 * fetch's unbounded pool does under load, had the simulator and the click service spend their CPU
 * opening sockets at 2,000/s: no click answered; 64 connections carried 200 clicks/s.
 */
const clickAgent = new Agent({ keepAlive: true, maxSockets: num('connections', 1, 10_000) });
const baseUrl = new URL(base);

function click(path: string): Promise<{ status: number; location: string | null }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: baseUrl.hostname, port: baseUrl.port, path, agent: clickAgent, timeout: 30_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location ?? null }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new DOMException('no answer within 30 s', 'TimeoutError')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A request that got no HTTP answer, and whether it surely never reached the server (connection
 * refused) — otherwise the server may have acted on it. undefined: some other error.
 */
function networkFailure(e: unknown): { refused: boolean } | undefined {
  if (e instanceof DOMException && e.name === 'TimeoutError') return { refused: false };
  // fetch (the API calls): a TypeError whose cause has the code; node:http (the clicks): the error.
  const code = (
    e instanceof TypeError ? (e.cause as { code?: string } | undefined) : (e as { code?: string })
  )?.code;
  if (!(e instanceof TypeError) && (typeof code !== 'string' || !code.startsWith('E'))) return undefined;
  return { refused: code === 'ECONNREFUSED' };
}

/**
 * Waits until the base URL answers /healthz (the simulator may start together with the app). Not
 * /readyz: a drill may point it at a click process whose Kafka is away on purpose (it spools).
 */
async function waitForApi(timeoutMs: number): Promise<void> {
  await waitFor(
    `${base}/healthz to answer 200`,
    async () => (await fetch(`${base}/healthz`)).ok,
    timeoutMs,
    1000,
  );
}

async function main(): Promise<void> {
  await waitForApi(120_000);
  const truth: GroundTruth = {
    baseUrl: base,
    startedAt: clock(),
    endedAt: 0,
    advertisers: [],
    ads: [],
    counts: {},
    sent: {},
    unexpected: 0,
    clockOffsetMs,
    failed: 0,
    ambiguous: [],
  };
  const ambiguous: AmbiguousClick[] = truth.ambiguous!;
  const unsureMinute: AmbiguousClick[] = (truth.unsureMinute = []);
  const redirectOf = new Map<string, string>();
  for (let i = 0; i < num('advertisers', 1, 1000); i++) {
    const a = await api<{ advertiserId: string; apiKey: string }>('POST', '/v1/advertisers', {
      name: `sim-${Date.now()}-${i}`,
    });
    truth.advertisers.push({ advertiserId: a.advertiserId, apiKey: a.apiKey });
  }
  for (let i = 0; i < num('ads', 1, 100_000); i++) {
    const owner = truth.advertisers[i % truth.advertisers.length]!;
    const redirectUrl = `https://advertiser-${owner.advertiserId}.example/landing/${i}`;
    const ad = await api<{ adId: string }>('POST', '/v1/ads', {
      advertiserId: owner.advertiserId,
      redirectUrl,
      name: `ad ${i}`,
    });
    truth.ads.push({ adId: ad.adId, advertiserId: owner.advertiserId });
    redirectOf.set(ad.adId, redirectUrl);
  }
  if (!opts.quiet) {
    for (const a of truth.advertisers)
      console.log(`[simulate] advertiser ${a.advertiserId}: dashboard key ${a.apiKey}`);
  }
  const clicked: string[] = []; // click paths of valid impressions, for duplicates
  const maxAdId = truth.ads.reduce((m, a) => (BigInt(a.adId) > m ? BigInt(a.adId) : m), 0n);

  const pickAd = (): string =>
    Math.random() < hotShare
      ? truth.ads[0]!.adId
      : truth.ads[Math.floor(Math.random() * truth.ads.length)]!.adId;

  /** Counts an answer that is not what its outcome expects; the first few are printed. */
  function unexpectedAnswer(what: string): void {
    truth.unexpected++;
    if (truth.unexpected <= 5) console.error(`[simulate] unexpected answer: ${what}`);
  }

  /** An impression of `adId` and its click path: from the API, or minted here as an ad server does. */
  async function impression(adId: string): Promise<{ impressionId: string; path: string }> {
    if (apiShare < 1 && Math.random() >= apiShare) {
      const imp = newImpression(
        { current: adServerKey, byId: new Map(), unnamed: adServerKey.secret },
        adId,
        config.ADCLICK_IMPRESSION_TTL_S,
        clock(),
      );
      return { impressionId: imp.impressionId, path: clickPath(imp) };
    }
    const imp = await api<ImpressionReply>('POST', '/v1/impressions', { adId });
    const path = imp.clickUrl.startsWith('http')
      ? new URL(imp.clickUrl).pathname + new URL(imp.clickUrl).search
      : imp.clickUrl;
    return { impressionId: imp.impressionId, path };
  }

  async function one(): Promise<void> {
    let outcome = pickOutcome();
    if (outcome === 'duplicate' && clicked.length === 0) outcome = 'valid';
    truth.sent[outcome] = (truth.sent[outcome] ?? 0) + 1;
    if (outcome === 'unknown') {
      const { status } = await click(
        `/c/${maxAdId + 1_000_000n}?imp=00000000-0000-4000-8000-000000000000&exp=1&sig=x`,
      );
      if (status !== 404) unexpectedAnswer(`unknown ad: ${status}, expected 404`);
      return;
    }
    let adId: string;
    let path: string;
    let impressionId = '';
    if (outcome === 'duplicate') {
      path = clicked[Math.floor(Math.random() * clicked.length)]!;
      adId = path.slice(3, path.indexOf('?'));
    } else {
      adId = pickAd();
      const imp = await impression(adId);
      impressionId = imp.impressionId;
      path = imp.path;
      if (outcome === 'bad_signature')
        path = path.replace(/sig=([^&]+)/, (_m, s: string) => `sig=${tamperedSignature(s)}`);
      if (outcome === 'expired') {
        const exp = clock() - 60_000;
        path = `/c/${adId}?imp=${imp.impressionId}&exp=${exp}&sig=${signImpression(config.ADCLICK_SIGNING_SECRET, adId, imp.impressionId, exp)}`;
      }
    }
    // Stay clear of minute boundaries so the server's minute is the one we record.
    while (nearMinuteBoundary(clock(), boundaryMarginMs)) await sleep(50);
    const sentAt = clock();
    let answer: { status: number; location: string | null };
    try {
      answer = await click(path);
    } catch (e) {
      const failure = networkFailure(e);
      if (!failure) throw e;
      truth.failed!++;
      // Sent but unanswered: the click service may have logged it. Never used for duplicates.
      if (outcome === 'valid' && !failure.refused) ambiguous.push({ adId, impressionId });
      return;
    }
    const answeredAt = clock();
    const { status, location } = answer;
    if (status !== 302 || location !== redirectOf.get(adId)) {
      unexpectedAnswer(`${outcome} click ${path}: ${status} ${location ?? ''}, expected 302`);
      return;
    }
    if (outcome === 'valid') {
      // Stamped by the click service between the two: in sentAt's minute only if both share it.
      if (minuteOf(sentAt) === minuteOf(answeredAt)) recordValidClick(truth.counts, adId, sentAt);
      else unsureMinute.push({ adId, impressionId });
      clicked.push(path);
    }
  }

  const total = Math.round(rate * durationS);
  const inFlight = new Set<Promise<void>>();
  const t0 = Date.now();
  let errors = 0;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const p = one().catch((e: Error) => {
      if (networkFailure(e)) {
        truth.failed!++; // an impression request to a click service that is down
        return;
      }
      errors++;
      if (errors <= 5) console.error(`[simulate] ${e.message}`);
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (!opts.quiet && i % Math.max(1, Math.round(rate * 5)) === 0 && i > 0) {
      console.error(`[simulate] ${i}/${total} clicks sent, ${totalOf(truth.counts)} valid so far`);
    }
  }
  truth.sendingMs = Date.now() - t0;
  await Promise.all(inFlight);
  truth.endedAt = clock();
  truth.unexpected += errors;
  writeFileSync(String(opts.out), JSON.stringify(truth, null, 2));
  console.log(
    `[simulate] sent ${total} clicks in ${(truth.sendingMs / 1000).toFixed(1)} s (${Math.round(total / (truth.sendingMs / 1000))}/s), ` +
      `the last answer ${((Date.now() - t0) / 1000).toFixed(1)} s after the first click: ${JSON.stringify(truth.sent)}; ` +
      `${totalOf(truth.counts)} valid first clicks; ${truth.unexpected} unexpected answers; ` +
      `${truth.failed} unanswered (${ambiguous.length} of them valid clicks that may have been logged); ` +
      `${unsureMinute.length} valid clicks answered in the minute after they were sent; ground truth in ${opts.out}`,
  );
  if (truth.unexpected > 0) process.exitCode = 1;
}

main().catch((e: Error) => {
  console.error(`[simulate] ${e.message}`);
  process.exit(1);
});
