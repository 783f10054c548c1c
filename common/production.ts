// Production mode (NODE_ENV=production, as the Dockerfile sets it): the development defaults that make
// a local run zero-config are public, so a process that would run with one of them refuses to start.
// Pure: `productionProblems` lists every problem at once, so the operator fixes them in one go.

/** The development defaults of common/config.ts: public, so never acceptable in production. */
export const DEV_DEFAULTS = {
  ADCLICK_ADMIN_KEY: 'dev-admin-key',
  ADCLICK_SIGNING_SECRET: 'dev-signing-secret-change-me',
  DATABASE_PASSWORD: 'adclick',
  S3_ACCESS_KEY_ID: 'adclick',
  S3_SECRET_ACCESS_KEY: 'adclick-dev-secret',
} as const;

/** Shortest admin key and signing secret accepted in production (a random 32-character token). */
export const MIN_SECRET_LENGTH = 32;

export const isProduction = (env: NodeJS.ProcessEnv): boolean => env.NODE_ENV === 'production';

/** The values production mode checks, as common/config.ts parsed them. */
export interface ProductionSettings {
  ADCLICK_ADMIN_KEY: string;
  ADCLICK_SIGNING_SECRET: string;
  ADCLICK_SIGNING_KEYS?: string;
  DATABASE_URL: string;
  S3_ACCESS_KEY_ID: string;
  S3_SECRET_ACCESS_KEY: string;
  ADCLICK_CLOCK_OFFSET_MS: number;
  BATCH_FAULT_PAUSE_MS: number;
}

/**
 * Every reason this configuration must not run in production, one line each (empty: fine). `env` is
 * the raw environment, to tell "not set" (the default was used) from "set to the default".
 */
export function productionProblems(c: ProductionSettings, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const unset = (name: string): boolean => env[name] === undefined || env[name] === '';

  if (unset('ADCLICK_ADMIN_KEY'))
    problems.push('ADCLICK_ADMIN_KEY is not set (the development default is public)');
  else if (c.ADCLICK_ADMIN_KEY === DEV_DEFAULTS.ADCLICK_ADMIN_KEY)
    problems.push('ADCLICK_ADMIN_KEY is the public development default');
  else if (c.ADCLICK_ADMIN_KEY.length < MIN_SECRET_LENGTH)
    problems.push(`ADCLICK_ADMIN_KEY is shorter than ${MIN_SECRET_LENGTH} characters`);

  if (unset('ADCLICK_SIGNING_KEYS') && unset('ADCLICK_SIGNING_SECRET'))
    problems.push(
      'ADCLICK_SIGNING_KEYS (or ADCLICK_SIGNING_SECRET) is not set (the development default is public)',
    );
  if (!unset('ADCLICK_SIGNING_SECRET'))
    problems.push(...secretProblems('ADCLICK_SIGNING_SECRET', c.ADCLICK_SIGNING_SECRET));
  for (const entry of (c.ADCLICK_SIGNING_KEYS ?? '').split(',').filter((e) => e.trim() !== '')) {
    const [id, ...rest] = entry.trim().split(':');
    problems.push(...secretProblems(`ADCLICK_SIGNING_KEYS key "${id}"`, rest.join(':')));
  }

  const dbPassword = passwordOf(c.DATABASE_URL) || env.PGPASSWORD || '';
  if (unset('DATABASE_URL'))
    problems.push('DATABASE_URL is not set (the development default has a public password)');
  else if (dbPassword === '') problems.push('DATABASE_URL has no password (and PGPASSWORD is not set)');
  else if (dbPassword === DEV_DEFAULTS.DATABASE_PASSWORD)
    problems.push('DATABASE_URL uses the public development password');

  for (const name of ['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
    if (unset(name)) problems.push(`${name} is not set (the development default is public)`);
    else if (c[name] === DEV_DEFAULTS[name]) problems.push(`${name} is the public development default`);
  }

  if (c.ADCLICK_CLOCK_OFFSET_MS !== 0)
    problems.push('ADCLICK_CLOCK_OFFSET_MS is set: it is for failure drills only (it must be 0)');
  if (c.BATCH_FAULT_PAUSE_MS !== 0)
    problems.push('BATCH_FAULT_PAUSE_MS is set: it is for failure drills only (it must be 0)');
  return problems;
}

function secretProblems(name: string, secret: string): string[] {
  if (secret === DEV_DEFAULTS.ADCLICK_SIGNING_SECRET) return [`${name} is the public development default`];
  if (secret.length < MIN_SECRET_LENGTH) return [`${name} is shorter than ${MIN_SECRET_LENGTH} characters`];
  return [];
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/** The one message a process prints before it refuses to start in production. */
export function productionRefusal(problems: readonly string[]): string {
  return [
    `Refusing to start in production (NODE_ENV=production) with ${problems.length === 1 ? 'this problem' : `these ${problems.length} problems`}:`,
    ...problems.map((p) => `  - ${p}`),
    'Set real values (README: "Running in production"; docker compose reads them from .env, see .env.example).',
  ].join('\n');
}
