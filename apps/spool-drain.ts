// Operator command: replays spool files that no click process will replay (a retired host, a removed
// worker) into Kafka, then deletes them. Safe while the system runs: a spool a live click process
// owns is left alone (exit code 1, rerun later or with --wait).
//
//   npm run spool:drain -- <file-or-dir> [--wait <seconds>] [--topic <name>]
//
// <file-or-dir>: one spool file (spool-<n>.log), or a folder whose *.log files are all drained.
// --wait: how long to wait for a spool whose lock another process holds (default 0: leave it).
// --topic: the clicks topic (default KAFKA_CLICKS_TOPIC). Ctrl-C stops after the batch in flight;
// what was acked stays committed, and a rerun goes on from there.
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { createKafka } from '../common/kafka.js';
import { drainSpools } from '../ingest/spool-drain.js';
import { spoolSendOptions } from './click-options.js';

const usage = 'usage: npm run spool:drain -- <file-or-dir> [--wait <seconds>] [--topic <name>]';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      wait: { type: 'string', default: '0' },
      topic: { type: 'string', default: config.KAFKA_CLICKS_TOPIC },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const waitS = Number(values.wait);
  if (values.help || positionals.length !== 1 || !Number.isFinite(waitS) || waitS < 0) {
    console.error(usage);
    return values.help ? 0 : 2;
  }
  const target = positionals[0]!;

  const stop = new AbortController();
  const interrupt = (): void => {
    console.log('stopping after the batch in flight…');
    stop.abort();
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);

  const reports = await drainSpools(target, {
    ...spoolSendOptions(createKafka('adclick-spool-drain'), { topic: values.topic }),
    lockWaitMs: waitS * 1000,
    signal: stop.signal,
  });
  const sent = reports.reduce((n, r) => n + r.sent, 0);
  const left = reports.filter((r) => r.status !== 'drained');
  console.log(
    `${reports.length} spool file(s) at ${target}: ${reports.length - left.length} drained, ` +
      `${left.length} left; ${sent} click events sent to ${values.topic}`,
  );
  return left.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`spool drain failed: ${e.message}`);
    process.exit(1);
  },
);
