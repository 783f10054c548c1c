// The local cluster's ports (stack/cluster.ts): below Linux's ephemeral range, where an outgoing
// connection may hold a port a service then cannot bind (both Pinot servers once failed to start with
// "Address already in use"), and none equal to a port of the single-node stack or of a private stack
// (the same ports shifted by 10000 or 20000).
import { describe, expect, it } from 'vitest';
import { clusterEnv, clusterKafkaPorts, clusterPinotServers } from './cluster.js';

const offset = Number(process.env.ADCLICK_CLUSTER_PORT_OFFSET ?? 23_000);
/** Every port the cluster listens on (each Kafka controller on the port after its broker). */
function clusterPorts(): number[] {
  const ports = new Set<number>();
  for (const [name, value] of Object.entries(clusterEnv)) {
    if (!/PORT$|_URL$|ADDRESS$|ENDPOINT$|BROKERS$/.test(name)) continue;
    for (const m of value.matchAll(/(?:^|:)(\d{2,5})(?=$|[/,])/g)) ports.add(Number(m[1]));
  }
  for (const p of clusterKafkaPorts) ports.add(p).add(p + 1);
  for (const s of clusterPinotServers) ports.add(s.netty).add(s.admin);
  return [...ports];
}

describe('the local cluster ports', () => {
  const ports = clusterPorts();

  it('finds the ports of every service', () => {
    expect(ports).toEqual(
      expect.arrayContaining([9092 + offset, 5432 + offset, 2191 + offset, 9468 + offset]),
    );
    expect(ports.length).toBeGreaterThan(20);
  });

  it('lie below the ephemeral range (32768-60999) and above the privileged ports', () => {
    expect(ports.filter((p) => p >= 32_768 || p <= 1024)).toEqual([]);
  });

  it('are none of the single-node stack ports shifted by 0, 10000 or 20000', () => {
    const base = ports.map((p) => p - offset);
    const taken = new Set(base.flatMap((b) => [b, b + 10_000, b + 20_000]));
    expect(ports.filter((p) => taken.has(p))).toEqual([]);
  });
});
