// Vegeta (github.com/tsenart/vegeta), the open-loop HTTP load generator the fault matrix sends its
// clicks with: built once into the stack's cache with `go install`, like Toxiproxy. Only the drill
// and its tests need it; `npm start` never does.
import { ensureGoBinary } from './runtime.js';

export const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@v12.13.0';

/** The path of the vegeta binary, built first if the cache does not have it. */
export function ensureVegeta(): Promise<string> {
  return ensureGoBinary('vegeta', VEGETA_MODULE);
}
