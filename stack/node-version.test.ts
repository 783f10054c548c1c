// One Node version everywhere: the Dockerfile's base image, .nvmrc and package.json's `engines` name
// the same major, and every package of the lockfile accepts it (else a fresh `npm ci` warns
// EBADENGINE, as http-proxy-3 2.x, which needs Node 22, did).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const semver = require('semver') as {
  satisfies(v: string, range: string): boolean;
  minVersion(r: string): { version: string } | null;
};
const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
const lowest = semver.minVersion(engines)!.version;

describe('one Node version', () => {
  it('the Dockerfile, .nvmrc and engines agree on the major', () => {
    const major = lowest.split('.')[0];
    expect(read('.nvmrc').trim()).toBe(major);
    expect(read('Dockerfile')).toMatch(new RegExp(`^FROM node:${major}-`, 'm'));
  });

  it('every locked package accepts the lowest Node that engines allows', () => {
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const refusing = Object.entries(lock.packages)
      .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node)
      .filter(([, p]) => !semver.satisfies(lowest, (p.engines as { node: string }).node))
      .map(([name, p]) => `${name}@${p.version} (node ${(p.engines as { node: string }).node})`);
    expect(refusing).toEqual([]);
  });
});
