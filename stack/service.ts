// The shape of one local infrastructure service, as the stack CLI drives it.
export interface StackService {
  name: string;
  /** Where clients reach it, for the status table. */
  address: string;
  /** Installs what is missing into the cache (idempotent, fast when done). */
  install(): void | Promise<void>;
  /** Starts the process detached; returns without waiting for health. */
  start(): Promise<void>;
  /** One cheap probe: does it answer now? */
  healthy(): Promise<boolean>;
  startupTimeoutMs: number;
  /** Runs once healthy on every `up`: creates users, buckets, topics (idempotent). */
  prepare?(): Promise<void>;
  /** Services that must be healthy before this one starts. */
  dependsOn?: string[];
}
