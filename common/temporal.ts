// Temporal client construction shared by the worker, the API and the operator scripts.
import { Client, Connection } from '@temporalio/client';
import { config } from './config.js';

export async function createTemporalClient(): Promise<Client> {
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
}
