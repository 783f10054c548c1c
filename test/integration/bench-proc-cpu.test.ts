// The system bench's CPU rows (bench/proc-cpu.ts) on real processes: a child that works and exits
// within a measurement must still be in its tree's figure (Redis's append-only-file rewrite,
// PostgreSQL's backends). No service is needed.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { expect, it } from 'vitest';
import { treeCpuSeconds } from '../../bench/proc-cpu.js';

/** utime + stime of one process alone, seconds (/proc/<pid>/stat fields 14 and 15). */
function ownCpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

it("counts the CPU of a child that exited during the measurement in its parent's tree", async () => {
  // The parent runs a child that spends a fixed amount of work and exits, reaps it, then waits.
  const burn = 'let x = 0; for (let i = 0; i < 4e8; i++) x = (x + i) % 7; process.exitCode = x > 7 ? 1 : 0;';
  const parent = spawn(
    process.execPath,
    [
      '-e',
      `const { spawnSync } = require('node:child_process');
       spawnSync(process.execPath, ['-e', ${JSON.stringify(burn)}], { stdio: 'ignore' });
       console.log('reaped');
       setTimeout(() => {}, 60000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const before = treeCpuSeconds({ parent: parent.pid }).parent!;
    const ownBefore = ownCpuSeconds(parent.pid!);
    await once(parent.stdout, 'data');
    const tree = treeCpuSeconds({ parent: parent.pid }).parent! - before;
    const own = ownCpuSeconds(parent.pid!) - ownBefore;
    // The child's loop is a few hundred ms of CPU; the parent alone spends far less.
    expect(tree - own).toBeGreaterThan(0.15);
  } finally {
    parent.kill();
  }
}, 60_000);
