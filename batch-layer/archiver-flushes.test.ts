// Which failed flushes hold the stall watchdog (an outage of S3 or PostgreSQL: waited out) and which
// do not (the consumer's own fault: a commit KafkaJS did not send, or sent to a coordinator that
// moved; the watchdog replaces the consumer). No I/O: a buffer with nothing new to upload goes
// straight to the commit.
import { KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { CommitNotSent, PartitionFlushes, staleCoordinator } from './archiver-flushes.js';
import type { ArchiverOptions } from './partition-buffer.js';

class Flushes extends PartitionFlushes {
  constructor(private readonly refusal: Error) {
    super({ flushMs: 1000 } as ArchiverOptions);
  }
  protected commit(): Promise<void> {
    return Promise.reject(this.refusal);
  }
  /** One partition read up to offset 41, nothing buffered (its rows uploaded by an earlier flush). */
  async flushOnce(): Promise<number> {
    this.buffer(0).lastOffset = '41';
    await this.flush(0).catch((e: Error) => this.noteFlushFailure(0, e));
    return this.lastFlushFailureAt;
  }
}

const protocolError = (type: string): Error => Object.assign(new KafkaJSProtocolError(type), { type });

describe('a failed flush', () => {
  it('refused by a coordinator that moved does not hold the watchdog, an outage does', async () => {
    expect(await new Flushes(protocolError('NOT_COORDINATOR')).flushOnce()).toBe(0);
    expect(await new Flushes(protocolError('COORDINATOR_NOT_AVAILABLE')).flushOnce()).toBe(0);
    expect(await new Flushes(new CommitNotSent('not sent')).flushOnce()).toBe(0);
    expect(await new Flushes(new Error('connect ECONNREFUSED 127.0.0.1:5432')).flushOnce()).toBeGreaterThan(
      0,
    );
  });

  it('tells the coordinator errors by their type', () => {
    expect(staleCoordinator(protocolError('NOT_COORDINATOR'))).toBe(true);
    expect(staleCoordinator(protocolError('REBALANCE_IN_PROGRESS'))).toBe(false);
    expect(staleCoordinator(undefined)).toBe(false);
  });
});
