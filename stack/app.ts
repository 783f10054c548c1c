// `npm start`: the app's processes on top of the stack. At this stage only the stack runs; the click
// service, speed layer, archiver, Temporal worker and serving layer join it as they land.
import { config } from '../common/config.js';
import { temporalUiUrl } from './services/temporal.js';

export async function startApp(): Promise<void> {
  console.log(`
The infrastructure is up (the app's own processes are not part of npm start yet):
  Temporal Web UI   ${temporalUiUrl}
  Kafka             ${config.KAFKA_BROKERS}
  PostgreSQL        ${config.DATABASE_URL.replace(/:[^:@/]+@/, ':***@')}
  Redis             ${config.REDIS_URL}
  S3 (bucket ${config.S3_BUCKET})  ${config.S3_ENDPOINT}
Stop it with: npm run stack:down`);
}
