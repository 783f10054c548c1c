// Debian's chromium for the dashboard's browser test (playwright-core drives it; Playwright's own
// browser download is not used). Installed with apt-get when missing, so `.ci/run` and a fresh
// machine need no manual step. Run directly: `tsx stack/ensure-chromium.ts`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** Path of a chromium binary, installing Debian's package first if there is none. */
export function ensureChromium(): string {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  if (process.getuid?.() !== 0)
    throw new Error('chromium is missing: run `sudo apt-get install -y chromium` (Debian) and retry');
  console.log('[stack] installing chromium (apt-get) for the dashboard browser test');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
      stdio: 'inherit',
      env,
    });
  try {
    install();
  } catch {
    // A fresh machine may have no package lists yet.
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    install();
  }
  const installed = CANDIDATES.find((p) => existsSync(p));
  if (!installed) throw new Error('apt-get install chromium finished but no chromium binary was found');
  return installed;
}

/** Flags for a headless run on a CI box with no GPU, no sandbox privileges and no network to spare. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

if (import.meta.url === `file://${process.argv[1]}`) console.log(ensureChromium());
