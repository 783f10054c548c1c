// A database of the stack's PostgreSQL by name: tests that need one of their own create it and drop
// it at the end (DATABASE_URL with another path).
import { config } from '../../common/config.js';

export function databaseUrl(name: string): string {
  const u = new URL(config.DATABASE_URL);
  u.pathname = `/${name}`;
  return u.href;
}
