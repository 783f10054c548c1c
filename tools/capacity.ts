// `npm run capacity -- --ads 10000000 --zipf 1 [--bytes-per-row minute=92,hour=106,day=110]`
// (docs/capacity.md): the expected rows of each count table from the Zipf model of tools/history.ts
// (the expected number of distinct ads, and advertisers, among a minute's, hour's, day's clicks),
// for a diurnal day (tools/history.ts diurnalRate) and a sustained rate, and what 7, 30, 92 and
// 365 days of each table take at the measured bytes per row. `--peak 100 --ads 1000000` gives the
// model of a `npm run scale` run, to set beside its measured rows.
import { parseArgs } from 'node:util';
import { diurnalRate, expectedDistinct, zipfBlocks, zipfCdf } from './history.js';

/** Advertisers as tools/scale.ts assigns them: the 100,000 hottest ads to one, then 1,000 ads each. */
function advertiserBlocks(ads: number, exponent: number): Array<{ count: number; p: number }> {
  const blocks = [{ count: 1, p: zipfCdf(Math.min(ads, 100_000) + 1, ads, exponent) }];
  for (let k = 100_000; k < ads; k += 1000)
    blocks.push({
      count: 1,
      p: zipfCdf(Math.min(ads, k + 1000) + 1, ads, exponent) - zipfCdf(k + 1, ads, exponent),
    });
  return blocks;
}

export interface DayRows {
  clicks: number;
  adMinute: number;
  adHour: number;
  adDay: number;
  advertiserMinute: number;
  advertiserHour: number;
  advertiserDay: number;
}

/** Expected rows of one day whose hour h has `rate(h)` clicks per second (uniform within the hour). */
export function dayRows(ads: number, exponent: number, rate: (hour: number) => number): DayRows {
  const ad = zipfBlocks(ads, exponent);
  const adv = advertiserBlocks(ads, exponent);
  const out: DayRows = {
    clicks: 0,
    adMinute: 0,
    adHour: 0,
    adDay: 0,
    advertiserMinute: 0,
    advertiserHour: 0,
    advertiserDay: 0,
  };
  for (let h = 0; h < 24; h++) {
    const perMinute = rate(h) * 60;
    out.clicks += perMinute * 60;
    out.adMinute += 60 * expectedDistinct(ad, perMinute);
    out.adHour += expectedDistinct(ad, perMinute * 60);
    out.advertiserMinute += 60 * expectedDistinct(adv, perMinute);
    out.advertiserHour += expectedDistinct(adv, perMinute * 60);
  }
  out.adDay = expectedDistinct(ad, out.clicks);
  out.advertiserDay = expectedDistinct(adv, out.clicks);
  return out;
}

const fmt = (n: number): string =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}G`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(1)}M`
      : n >= 1e3
        ? `${(n / 1e3).toFixed(1)}k`
        : n.toFixed(0);
const gb = (bytes: number): string =>
  bytes >= 1e12 ? `${(bytes / 1e12).toFixed(2)} TB` : `${(bytes / 1e9).toFixed(1)} GB`;

function main(): void {
  const { values } = parseArgs({
    options: {
      ads: { type: 'string', default: '10000000' },
      zipf: { type: 'string', default: '1' },
      peak: { type: 'string', default: '10000' },
      'bytes-per-row': { type: 'string', default: 'minute=92,hour=106,day=110' },
    },
  });
  const ads = Number(values.ads);
  const exponent = Number(values.zipf);
  const peak = Number(values.peak);
  const bpr = Object.fromEntries(
    values['bytes-per-row'].split(',').map((kv) => {
      const [k, v] = kv.split('=');
      return [k!, Number(v)];
    }),
  ) as Record<'minute' | 'hour' | 'day', number>;
  const scenarios: Array<[string, DayRows]> = [
    [`diurnal, peak ${peak}/s`, dayRows(ads, exponent, (h) => diurnalRate(h, peak))],
    [`sustained ${peak}/s`, dayRows(ads, exponent, () => peak)],
  ];
  console.log(`Zipf ${exponent} over ${fmt(ads)} ads; rows per day (model)`);
  for (const [name, d] of scenarios)
    console.log(
      `${name}: clicks ${fmt(d.clicks)}; ad-minute ${fmt(d.adMinute)}, ad-hour ${fmt(d.adHour)}, ad-day ${fmt(d.adDay)}; ` +
        `advertiser-minute ${fmt(d.advertiserMinute)}, advertiser-hour ${fmt(d.advertiserHour)}, advertiser-day ${fmt(d.advertiserDay)}`,
    );
  console.log(
    `\nkept for D days (per-ad + per-advertiser rows; bytes at ${values['bytes-per-row']} bytes/row)`,
  );
  for (const [name, d] of scenarios)
    for (const days of [7, 30, 92, 365]) {
      const minute = (d.adMinute + d.advertiserMinute) * days;
      const hour = (d.adHour + d.advertiserHour) * days;
      const day = (d.adDay + d.advertiserDay) * days;
      console.log(
        `${name}, ${days} d: minute ${fmt(minute)} rows ${gb(minute * bpr.minute)}; hour ${fmt(hour)} rows ${gb(hour * bpr.hour)}; day ${fmt(day)} rows ${gb(day * bpr.day)}`,
      );
    }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
