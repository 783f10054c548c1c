// Workflow ids derived from the window they work on, so a second start of the same window is not a
// second run. Shared by the workflows (children), the batch operations (backfills) and the tests.
import { hourIso } from './time.js';

export const compactHourId = (hourStart: number): string => `compact-hour-${hourIso(hourStart)}`;
export const backfillId = (from: number, to: number): string => `backfill-${hourIso(from)}-${hourIso(to)}`;
