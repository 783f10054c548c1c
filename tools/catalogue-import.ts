// `npm run catalogue:import -- file.csv`: loads ads from a CSV file with a header row naming the
// columns advertiser_id, redirect_url and (optionally) name, in any order. COPY, one transaction,
// progress bar on stderr (see catalogue-load.ts); unknown advertiser ids roll the whole load back.
import { createReadStream, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { createPool, migrate } from '../common/db.js';
import { copyAds, progressBar, REBUILD_INDEX_ROWS } from './catalogue-load.js';
import { isId } from '../common/ids.js';

const file = process.argv[2];
if (!file) {
  console.error('usage: npm run catalogue:import -- ads.csv   (header: advertiser_id,redirect_url[,name])');
  process.exit(2);
}

/** Splits one CSV line into fields (RFC 4180 quotes). */
function fields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}
const quote = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

const size = statSync(file).size;
const bar = progressBar('bytes', size);
let header: string[] | undefined;
let rest = '';
let lineNo = 0;
/** Reorders each line to advertiser_id,redirect_url,name and checks the URL; lines are short. */
const reorder = new Transform({
  transform(chunk: Buffer, _enc, done) {
    bar.tick(chunk.length);
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop()!;
    try {
      done(null, lines.map(convert).join(''));
    } catch (e) {
      done(e as Error);
    }
  },
  flush(done) {
    try {
      done(null, rest.trim() ? convert(rest) : '');
    } catch (e) {
      done(e as Error);
    }
  },
});
function convert(raw: string): string {
  lineNo++;
  const line = raw.replace(/\r$/, '');
  if (!header) {
    header = fields(line).map((h) => h.trim().toLowerCase());
    if (!header.includes('advertiser_id') || !header.includes('redirect_url'))
      throw new Error(`${file}: the header must name advertiser_id and redirect_url, got "${line}"`);
    return '';
  }
  if (line.trim() === '') return '';
  const f = fields(line);
  const get = (name: string) => f[header!.indexOf(name)] ?? '';
  const advertiserId = get('advertiser_id').trim();
  const url = get('redirect_url').trim();
  if (!isId(advertiserId)) throw new Error(`${file}:${lineNo}: bad advertiser_id "${advertiserId}"`);
  let href: string;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    href = u.href;
  } catch {
    throw new Error(`${file}:${lineNo}: redirect_url "${url}" is not an absolute http(s) URL`);
  }
  const name = header!.includes('name') ? get('name') : '';
  return `${advertiserId},${quote(href)},${name === '' ? '' : quote(name)}\n`;
}

const pool = createPool(2);
try {
  await migrate(pool);
  // ~100 bytes a row: a file of 100 MB or more is a load of about a million ads.
  const result = await copyAds(pool, createReadStream(file).pipe(reorder), {
    rebuildIndex: size >= REBUILD_INDEX_ROWS * 100,
    onPhase: (m) => console.error(`\n${m}…`),
  });
  bar.done();
  console.log(
    JSON.stringify({
      ads: result.rows,
      firstAdId: result.firstAdId,
      lastAdId: result.lastAdId,
      seconds: Number(result.seconds.toFixed(1)),
    }),
  );
} catch (e) {
  console.error(`\nimport failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await pool.end();
}
