// GET /v1/admin/ops — the operator view's data (ops.html): hours not final, late files, the latest
// reconciliation, recent backfills with their Temporal UI links, the click processes' spools, consumer
// lag per partition, free disk and Redis's memory (ops-status.ts). Mounted after `authenticate()`; admin key only.
import express, { type Router } from 'express';
import { z } from 'zod';
import { requireAdmin } from '../common/auth.js';
import { json, keyedErrors, type ApiRoute } from '../common/openapi.js';
import type { OpsStatusReader } from './ops-status.js';

export const opsRoutes: ApiRoute[] = [
  {
    method: 'get',
    path: '/v1/admin/ops',
    summary:
      'The operator view: hours not final, late files, backfills, spools, consumer lag, disks, Redis memory (admin)',
    responses: {
      '200': json('operations status', z.record(z.string(), z.unknown())),
      ...keyedErrors({ '403': 'not the admin key' }),
    },
  },
];

const iso = (ms: number | undefined): string | undefined =>
  ms === undefined ? undefined : new Date(ms).toISOString();

export function opsRouter(deps: {
  reader: OpsStatusReader;
  temporalUiUrl: string;
  namespace: string;
}): Router {
  const router = express.Router();
  const workflowLink = (id: string): string =>
    `${deps.temporalUiUrl}/namespaces/${encodeURIComponent(deps.namespace)}/workflows/${encodeURIComponent(id)}`;
  router.get('/v1/admin/ops', requireAdmin, async (_req, res) => {
    const s = await deps.reader.read();
    res.json({
      at: iso(s.at),
      notFinal: s.hours
        .filter((h) => h.state !== 'final')
        .map((h) => ({
          hour: iso(h.hour),
          state: h.state,
          ...(h.failure?.kind === 'waiting' && {
            waitingFor: h.failure.reason,
            waitingSince: iso(h.failure.failedAt),
          }),
          ...(h.failure?.kind === 'failed' && {
            failure: {
              reason: h.failure.reason,
              failedAt: iso(h.failure.failedAt),
              workflowId: h.failure.workflowId,
              link: workflowLink(h.failure.workflowId),
            },
          }),
        })),
      oldestNotFinalHourEnd: iso(s.oldestNotFinalHourEnd),
      lateFiles: { ...s.lateFiles, oldestUploadedAt: iso(s.lateFiles.oldestUploadedAt) },
      reconciliation: s.reconciliation && { ...s.reconciliation, createdAt: iso(s.reconciliation.createdAt) },
      backfills: s.backfills.map((b) => ({
        workflowId: b.workflowId,
        status: b.status,
        startedAt: iso(b.startedAt),
        closedAt: iso(b.closedAt),
        link: `${workflowLink(b.workflowId)}/${encodeURIComponent(b.runId)}/history`,
      })),
      temporalUi: deps.temporalUiUrl,
      spools: s.spools.map((p) => ({ ...p, reportedAt: iso(p.reportedAt) })),
      consumers: s.consumers ?? null,
      disks: s.disks,
      redis: s.redis ?? null,
      errors: s.errors,
    });
  });
  return router;
}
