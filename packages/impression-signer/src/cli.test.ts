// The CLI mints impressions that verify under the key from the environment, and refuses to run
// without one (never taking a secret on the command line).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { verifyImpression } from './index.js';

const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
const run = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

describe('adclick-impression CLI', () => {
  it('prints one JSON line per impression, signed with the key of the environment', () => {
    const secret = 'cli-secret-0123456789abcdef';
    const r = run(['--count', '2', '--base-url', 'https://clicks.example.com', '7', '8'], {
      ADCLICK_SIGNER_KEY_ID: 'as1',
      ADCLICK_SIGNER_SECRET: secret,
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { adId: string; impressionId: string; expiresAt: number; clickUrl: string },
      );
    expect(lines.map((l) => l.adId)).toEqual(['7', '7', '8', '8']);
    for (const l of lines) {
      const url = new URL(l.clickUrl);
      expect(url.origin).toBe('https://clicks.example.com');
      expect(url.searchParams.get('kid')).toBe('as1');
      expect(
        verifyImpression(secret, l.adId, l.impressionId, l.expiresAt, url.searchParams.get('sig')!),
      ).toBe(true);
    }
  });

  it('exits 2 with a message without a key in the environment or with a bad ad id', () => {
    const noKey = run(['7'], { ADCLICK_SIGNER_KEY_ID: '', ADCLICK_SIGNER_SECRET: '' });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/keyId/);
    const badAd = run(['x7'], {
      ADCLICK_SIGNER_KEY_ID: 'as1',
      ADCLICK_SIGNER_SECRET: 'cli-secret-0123456789abcdef',
    });
    expect(badAd.status).toBe(2);
    expect(badAd.stderr).toMatch(/adId/);
  });
});
