// Archive watermark of one partition: every event with ts before it that Kafka holds up to the
// consumed position is in S3. Pure, so the rule is tested on its own.
export interface PartitionProgress {
  /** Smallest ts among consumed events not yet uploaded; undefined when nothing is buffered. */
  bufferedMinTs?: number;
  /** Kafka timestamp (produce time) of the last consumed message, if any this session. */
  lastMessageTime?: number;
  /** Nothing buffered and the committed offset equals the partition's end: an idle, caught-up partition. */
  caughtUp: boolean;
}

/**
 * Events are stamped by the click service just before they are produced, so a message produced at
 * time T carries ts ≥ T − grace (grace covers the produce path; spool replays are later than that and
 * are picked up by re-compaction). A caught-up partition holds nothing back: its watermark is now − grace.
 */
export function partitionWatermark(p: PartitionProgress, now: number, graceMs: number): number | undefined {
  const consumed = p.caughtUp
    ? now - graceMs
    : p.lastMessageTime !== undefined
      ? p.lastMessageTime - graceMs
      : undefined;
  if (p.bufferedMinTs === undefined) return consumed;
  return consumed === undefined ? p.bufferedMinTs : Math.min(consumed, p.bufferedMinTs);
}
