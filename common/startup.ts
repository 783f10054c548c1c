// What every long-running process needs to outlive its dependencies (docs/dependencies.md): start-up
// steps retried with backoff until they succeed (a process starts while a dependency is away), a
// Kafka probe for readiness, and KafkaJS consumers restarted in-process after a crash KafkaJS does
// not restart itself. The supervisor's restarts (stack/app.ts) are for bugs, not for these.
import type { Consumer, Kafka } from 'kafkajs';
import type { Probe } from './health.js';
import { backoffDelay, sleep } from './wait.js';

/**
 * Runs `attempt` until it resolves: 0.5 s between the first failures, doubling to `maxDelayMs` (5 s),
 * each failure logged with what is being waited for. `stopped` ends it (the promise then rejects).
 */
export async function keepTrying<T>(
  what: string,
  attempt: () => Promise<T>,
  opts: { log: (message: string) => void; maxDelayMs?: number; stopped?: () => boolean },
): Promise<T> {
  const max = opts.maxDelayMs ?? 5000;
  for (let n = 1; ; n++) {
    try {
      const result = await attempt();
      if (n > 1) opts.log(`${what}: done after ${n} attempts`);
      return result;
    } catch (e) {
      if (opts.stopped?.()) throw e;
      const delay = backoffDelay(n, { firstMs: 500, maxMs: max });
      opts.log(`${what} failed (attempt ${n}, retry in ${delay} ms): ${(e as Error).message}`);
      await sleep(delay);
    }
  }
}

/**
 * A readiness check of the Kafka brokers through `kafka` (made with `createKafka(id, { probe: true })`:
 * no retries, short deadline): the cluster answers a metadata request. Reconnects after a failure.
 */
export function kafkaProbe(kafka: Kafka): { probe: Probe; close: () => Promise<void> } {
  let admin: ReturnType<Kafka['admin']> | undefined;
  return {
    probe: async () => {
      try {
        if (!admin) {
          admin = kafka.admin();
          await admin.connect();
        }
        await admin.describeCluster();
      } catch (e) {
        const failed = admin;
        admin = undefined;
        await failed?.disconnect().catch(() => undefined);
        throw e;
      }
    },
    close: async () => {
      await admin?.disconnect().catch(() => undefined);
    },
  };
}

/**
 * Keeps a KafkaJS consumer running: KafkaJS restarts it after a retriable crash by itself, but after
 * any other crash (an error it does not classify as retriable, thrown by a broker answer or by our
 * own batch handler) it stays stopped for good. Here such a crash restarts it in-process (connect,
 * run again with the same subscriptions) with backoff. `probe` says whether the consumer is a
 * member of its group now (joined, not crashed since), for /readyz.
 */
export function superviseConsumer(
  consumer: Consumer,
  opts: { name: string; run: () => Promise<void>; log: (message: string) => void },
): { probe: Probe; stop: () => void } {
  let joined = false;
  let why = 'has not joined its group yet';
  let stopped = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  consumer.on(consumer.events.STOP, () => {
    joined = false;
    why = 'stopped';
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    why = `crashed: ${payload.error.message}`;
    if (payload.restart || stopped) {
      opts.log(`${opts.name}: consumer crashed (${payload.error.message}); KafkaJS restarts it`);
      return;
    }
    opts.log(
      `${opts.name}: consumer crashed for good in KafkaJS (${payload.error.message}); restarting it here`,
    );
    void keepTrying(
      `${opts.name}: consumer restart`,
      async () => {
        await consumer.connect();
        await opts.run();
      },
      { log: opts.log, stopped: () => stopped },
    ).catch(() => undefined);
  });
  return {
    probe: () => (joined ? Promise.resolve() : Promise.reject(new Error(`consumer ${why}`))),
    stop: () => {
      stopped = true;
    },
  };
}
