#!/usr/bin/env node
// adclick-impression: mints impressions from the command line (scripts, tests, a shell ad server).
//   ADCLICK_SIGNER_KEY_ID=as1 ADCLICK_SIGNER_SECRET=… adclick-impression [--ttl 86400]
//     [--base-url https://clicks.example.com] [--count N] <adId>...
// prints one JSON object per impression (adId, impressionId, expiresAt, kid, clickUrl). The secret
// comes from the environment only, never from the command line (it would show in `ps`).
import { parseArgs } from 'node:util';
import { createImpressionSigner } from './index.js';

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ttl: { type: 'string' },
      'base-url': { type: 'string' },
      count: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    console.error(
      'usage: ADCLICK_SIGNER_KEY_ID=<id> ADCLICK_SIGNER_SECRET=<secret> adclick-impression [--ttl s] [--base-url url] [--count n] <adId>...',
    );
    return values.help ? 0 : 2;
  }
  const keyId = process.env.ADCLICK_SIGNER_KEY_ID ?? '';
  const secret = process.env.ADCLICK_SIGNER_SECRET ?? '';
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new TypeError('--count must be a positive integer');
  const signer = createImpressionSigner({
    keyId,
    secret,
    ...(values.ttl !== undefined && { ttlSeconds: Number(values.ttl) }),
    ...(values['base-url'] !== undefined && { baseUrl: values['base-url'] }),
  });
  const lines: string[] = [];
  for (const adId of positionals)
    for (let n = 0; n < count; n++) {
      const i = signer.mint(adId);
      lines.push(
        JSON.stringify({
          adId: i.adId,
          impressionId: i.impressionId,
          expiresAt: i.expiresAt,
          kid: i.kid,
          clickUrl: i.clickUrl,
        }),
      );
    }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`adclick-impression: ${(e as Error).message}`);
  process.exitCode = 2;
}
