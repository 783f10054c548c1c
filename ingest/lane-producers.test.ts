// The click log's placement of a key must be the one Java's clients and kafkajs make, or a key's
// clicks would land on two partitions depending on which client sent them.
import { randomBytes } from 'node:crypto';
import { murmur2 } from '@platformatic/kafka';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaMurmur2 } from './lane-producers.js';

const { Partitioners } = kafkajs;

describe('kafkaMurmur2', () => {
  it("gives Kafka's own test vectors (UtilsTest.testMurmur2)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, java] of cases) expect(kafkaMurmur2(Buffer.from(key)) | 0, key).toBe(java);
  });

  it("agrees with @platformatic/kafka's BigInt murmur2 and kafkajs' partitioner on random keys", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 7 }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
      partitionErrorCode: 0,
    }));
    for (let i = 0; i < 2000; i++) {
      const key = randomBytes(i % 67);
      const hash = kafkaMurmur2(key);
      expect(hash | 0).toBe(murmur2(key) | 0);
      if (key.length > 0)
        expect((hash & 0x7fffffff) % 7).toBe(
          partitioner({ topic: 't', partitionMetadata, message: { key, value: null } }),
        );
    }
  });
});
