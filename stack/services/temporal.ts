// Temporal's development server (the `temporal` CLI built with go install) with the Web UI and a
// SQLite file, so workflow history survives a restart.
import { join } from 'node:path';
import { config, hostPort } from '../../common/config.js';
import type { StackService } from '../service.js';
import { dataDir, ensureGoBinary, httpOk, startDetached, tcpOpen } from '../runtime.js';

// v1.5.1 is the newest tag without a `replace` directive, which `go install pkg@version` rejects.
const MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
const { host, port } = hostPort(config.TEMPORAL_ADDRESS);
export const temporalUiUrl = `http://${host}:${config.TEMPORAL_UI_PORT}`;

export const temporal: StackService = {
  name: 'temporal',
  address: `${host}:${port} (UI ${temporalUiUrl})`,
  startupTimeoutMs: 60_000,
  async install() {
    await ensureGoBinary('temporal', MODULE);
  },
  async start() {
    const bin = await ensureGoBinary('temporal', MODULE);
    startDetached(
      'temporal',
      bin,
      [
        'server',
        'start-dev',
        '--db-filename',
        join(dataDir('temporal'), 'temporal.db'),
        '--ip',
        host,
        '--port',
        String(port),
        '--ui-ip',
        host,
        '--ui-port',
        String(config.TEMPORAL_UI_PORT),
        '--namespace',
        config.TEMPORAL_NAMESPACE,
        '--log-level',
        'warn',
      ],
      { background: true },
    );
  },
  async healthy() {
    return (await tcpOpen(host, port)) && (await httpOk(temporalUiUrl));
  },
};
