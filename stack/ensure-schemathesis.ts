// Schemathesis (PyPI, pinned) for the contract test: installed into a virtualenv in the cache the
// first time it is needed (`python3 -m venv` + pip), then reused. Returns the path of its CLI.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, log, runStep, which } from './runtime.js';

export const SCHEMATHESIS_VERSION = '4.32.5';

export async function ensureSchemathesis(): Promise<string> {
  const venv = join(cacheDir, `schemathesis-${SCHEMATHESIS_VERSION}`);
  const cli = join(venv, 'bin', 'schemathesis');
  if (existsSync(cli)) return cli;
  const python = which('python3');
  if (!python)
    throw new Error('the contract test needs Python 3.9+ (python3 with venv and pip) for Schemathesis');
  log(`installing Schemathesis ${SCHEMATHESIS_VERSION} from PyPI into ${venv} (first time only) ...`);
  mkdirSync(cacheDir, { recursive: true });
  await runStep('schemathesis', python, ['-m', 'venv', venv]);
  await runStep('schemathesis', join(venv, 'bin', 'pip'), [
    'install',
    '--quiet',
    '--disable-pip-version-check',
    `schemathesis==${SCHEMATHESIS_VERSION}`,
  ]);
  return cli;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  ensureSchemathesis().then(
    (cli) => console.log(cli),
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
