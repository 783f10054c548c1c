// Impressions per second on one core: `npm run bench` here, or `npx tsx packages/impression-signer/src/bench.ts`
// from the repository. Prints the rate of mint() beside a baseline of the two primitives it costs
// (randomUUID and one HMAC-SHA256 with an imported key), measured in the same run.
import { createHmac, createSecretKey, randomUUID } from 'node:crypto';
import { createImpressionSigner } from './index.js';

const seconds = Number(process.argv[2] ?? 3);

function rate(name: string, fn: () => unknown): number {
  for (let i = 0; i < 50_000; i++) fn(); // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 10_000; i++) fn();
    n += 10_000;
    now = process.hrtime.bigint();
  }
  const perS = n / (Number(now - start) / 1e9);
  console.log(`${name.padEnd(34)} ${Math.round(perS).toLocaleString('en-US').padStart(12)} /s`);
  return perS;
}

const signer = createImpressionSigner({ keyId: 'as1', secret: 'bench-secret-0123456789abcdef0123' });
const key = createSecretKey(Buffer.from('bench-secret-0123456789abcdef0123'));
let ad = 0;
const cpu0 = process.cpuUsage();
rate('baseline: randomUUID + HMAC', () =>
  createHmac('sha256', key).update(`1.${randomUUID()}.1800000000000`).digest('base64url'),
);
const mint = rate('mint() (one core)', () => signer.mint(String((ad++ % 1_000_000) + 1)));
const cpu = process.cpuUsage(cpu0);
console.log(
  `cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s over ${(2 * seconds).toFixed(0)} s of wall time`,
);
if (process.argv.includes('--json')) console.log(JSON.stringify({ mintPerSecond: Math.round(mint) }));
