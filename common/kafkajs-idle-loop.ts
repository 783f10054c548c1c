// kafkajs 2.2.4 (its last release) checks each broker connection's queue of waiting requests after
// every answer, and then schedules the next check whether or not a request waits: with none waiting
// and no throttle, the delay it computes is negative, so the check runs again a millisecond later,
// and again, for the life of the connection (tulios/kafkajs#1556 and #1704; the fix, #1667, is not
// released). Every connection of every kafkajs client so wakes its process about a thousand times a
// second. Measured here: a click process doing nothing spent 2.6 s of CPU per 40 s; the profiles of
// the speed layer, the archiver and the click process all show the loop's timers.
//
// The check matters only while a request waits (throttled, or over the in-flight limit: an answer
// checks the queue again anyway). So it is scheduled only then, at the end of the throttle or in
// CHECK_PENDING_REQUESTS_INTERVAL (10 ms), as kafkajs does when a request waits. Applied to kafkajs'
// RequestQueue class once, on import (common/kafka.ts imports it); a kafkajs other than 2.2.4 is left
// as it is, with a warning, to be looked at again. KAFKAJS_REQUEST_QUEUE=as-released leaves it too.
import { createRequire } from 'node:module';
import { config } from './config.js';

const require = createRequire(import.meta.url);

/** The version whose RequestQueue this replaces a method of. */
export const PATCHED_KAFKAJS = '2.2.4';
/** kafkajs' own delay before a waiting request is checked again (CHECK_PENDING_REQUESTS_INTERVAL). */
const CHECK_INTERVAL_MS = 10;

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

type RequestQueueClass = { prototype: RequestQueueLike } & { idleLoopFixed?: boolean };

/** kafkajs' RequestQueue class (one per broker connection). */
export function requestQueueClass(): RequestQueueClass {
  return require('kafkajs/src/network/requestQueue/index.js') as RequestQueueClass;
}

/** Replaces RequestQueue.scheduleCheckPendingRequests (idempotent); false if kafkajs is another version. */
export function fixKafkajsIdleLoop(): boolean {
  const { version } = require('kafkajs/package.json') as { version: string };
  if (version !== PATCHED_KAFKAJS) {
    console.warn(
      `[kafka] kafkajs ${version}, not ${PATCHED_KAFKAJS}: its request queue is left as it is (common/kafkajs-idle-loop.ts)`,
    );
    return false;
  }
  const RequestQueue = requestQueueClass();
  if (RequestQueue.idleLoopFixed) return true;
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueLike) {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const untilUnthrottled = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      untilUnthrottled > 0 ? untilUnthrottled : CHECK_INTERVAL_MS,
    );
  };
  RequestQueue.idleLoopFixed = true;
  return true;
}

if (config.KAFKAJS_REQUEST_QUEUE === 'fixed') fixKafkajsIdleLoop();
