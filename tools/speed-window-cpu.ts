// `npx tsx tools/speed-window-cpu.ts [--rate 2500] [--seconds 480] [--rounds 3]`: the speed layer's
// per-event work without Kafka: click events in the binary encoding, one partition's share of the
// traffic (the system bench's 10,000/s over 4 partitions by default), ads by Zipf(1) over 10M, the
// system bench's mix (bench/zipf.ts SYSTEM_MIX), decoded and fed to a MinuteWindow
// (SPEED_OPEN_WINDOW_MINUTES's default) and flushed every 500 ms of event time, as
// speed-layer/consumer.ts does. Prints, per round, the CPU ms per 1,000 events (decode alone, then
// decode + window), the impression ids held at the end and the heap the window holds for each
// (after a full collection). Pure computation, so it compares two checkouts of
// speed-layer/minute-window.ts and common/click-event.ts on a machine that is otherwise quiet.
import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeClickEvent, encodeClickEvent, type ClickStatus } from '../common/click-event.js';
import { MINUTE_MS } from '../common/time.js';
import { SYSTEM_MIX, ZipfSampler } from '../bench/zipf.js';
import { MinuteWindow } from '../speed-layer/minute-window.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const RATE = arg('--rate', 2500);
const SECONDS = arg('--seconds', 480);
const ROUNDS = arg('--rounds', 3);
const OPEN_MINUTES = 5;

function traffic(): Buffer[] {
  const zipf = new ZipfSampler(10_000_000);
  const t0 = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  const recent: string[] = [];
  const out: Buffer[] = [];
  for (let i = 0; i < RATE * SECONDS; i++) {
    const r = Math.random();
    let status: ClickStatus = 'valid';
    let eventId: string = randomUUID();
    const { duplicate, badSignature, expired } = SYSTEM_MIX;
    if (r < duplicate && recent.length > 0) eventId = recent[Math.floor(Math.random() * recent.length)]!;
    else if (r < duplicate + badSignature) status = 'bad_signature';
    else if (r < duplicate + badSignature + expired) status = 'expired';
    if (status === 'valid' && r >= duplicate) recent.push(eventId);
    if (recent.length > 20_000) recent.splice(0, 10_000);
    const ad = zipf.next();
    const ts = t0 + Math.floor((i / RATE) * 1000);
    const adId = String(ad);
    out.push(
      encodeClickEvent({
        v: 1,
        eventId,
        adId,
        advertiserId: String(1 + (ad % 10_000)),
        ts,
        status,
        salt: ad % 4,
      }),
    );
  }
  return out;
}

function cpuMs(run: () => void): number {
  const c0 = process.cpuUsage();
  run();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

// A full collection on demand, so the heap a window holds can be told from garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};

const events = traffic();
const perK = (ms: number): string => (ms / (events.length / 1000)).toFixed(2);
for (let round = 1; round <= ROUNDS; round++) {
  const decodeMs = cpuMs(() => {
    for (const b of events) decodeClickEvent(b);
  });
  const heapBefore = heapAfterGc();
  const window = new MinuteWindow(
    { nextOffset: 0, replayFrom: 0, watermark: null },
    { openMinutes: OPEN_MINUTES },
  );
  let changes = 0;
  const windowMs = cpuMs(() => {
    const flushEvery = RATE / 2;
    for (let offset = 0; offset < events.length; offset++) {
      window.add(decodeClickEvent(events[offset]!), offset);
      if (offset % flushEvery === flushEvery - 1) changes += window.flush(offset + 1).changes.length;
    }
  });
  console.log(
    JSON.stringify({
      round,
      events: events.length,
      decodeCpuMsPer1k: perK(decodeMs),
      decodeAndWindowCpuMsPer1k: perK(windowMs),
      changesPerEvent: (changes / events.length).toFixed(3),
      heldIds: window.heldIds,
      heapBytesPerHeldId: Math.round((heapAfterGc() - heapBefore) / window.heldIds),
    }),
  );
}
