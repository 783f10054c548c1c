// The workflows are named by their exports: a wrong name, or a query taken for a workflow, or
// arguments that do not fit the workflow's input, fail type-checking (`npm run typecheck` checks the
// lines marked as expected errors: each must be one).
import { describe, expect, it } from 'vitest';
import { startWorkflowAction, workflowType } from './operations.js';

describe('workflow names checked against workflows/index.ts', () => {
  it('a workflow is named by its export', () => {
    expect(workflowType('backfill')).toBe('backfill');
    // @ts-expect-error not an exported workflow (a renamed one fails the same way)
    expect(workflowType('backfil')).toBe('backfil');
    // @ts-expect-error an export, but a query, not a workflow
    expect(workflowType('backfillProgressQuery')).toBe('backfillProgressQuery');
  });

  it("a schedule's action carries the workflow's name and arguments of its input's type", () => {
    expect(startWorkflowAction('compactHour', { workflowId: 'w', taskQueue: 'q', args: [{}] })).toEqual({
      type: 'startWorkflow',
      workflowType: 'compactHour',
      workflowId: 'w',
      taskQueue: 'q',
      args: [{}],
    });
    // @ts-expect-error compactHour's `hour` is an ISO string
    startWorkflowAction('compactHour', { workflowId: 'w', taskQueue: 'q', args: [{ hour: 5 }] });
  });
});
