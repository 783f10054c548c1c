// An S3-compatible object store: Versity S3 Gateway (Apache-2.0) over a local folder, built with
// go install. The app speaks only the S3 API, so MinIO or AWS S3 work the same via S3_ENDPOINT.
import { config } from '../../common/config.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import type { StackService } from '../service.js';
import { dataDir, ensureGoBinary, startDetached, tcpOpen } from '../runtime.js';

const MODULE = 'github.com/versity/versitygw/cmd/versitygw@v1.8.0';
const endpoint = new URL(config.S3_ENDPOINT);
const port = Number(endpoint.port || 80);

export const s3: StackService = {
  name: 's3',
  address: config.S3_ENDPOINT,
  startupTimeoutMs: 30_000,
  async install() {
    await ensureGoBinary('versitygw', MODULE);
  },
  async start() {
    const bin = await ensureGoBinary('versitygw', MODULE);
    startDetached(
      's3',
      bin,
      ['--port', `${endpoint.hostname}:${port}`, '--region', config.S3_REGION, 'posix', dataDir('s3')],
      {
        background: true,
        // Credentials through the environment, not the command line (ps shows arguments).
        env: {
          ROOT_ACCESS_KEY_ID: config.S3_ACCESS_KEY_ID,
          ROOT_SECRET_ACCESS_KEY: config.S3_SECRET_ACCESS_KEY,
        },
      },
    );
  },
  healthy() {
    return tcpOpen(endpoint.hostname, port);
  },
  async prepare() {
    const client = createS3();
    try {
      await ensureBucket(client, config.S3_BUCKET);
    } finally {
      client.destroy();
    }
  },
};
