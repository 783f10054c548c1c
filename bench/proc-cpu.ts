// CPU time of process trees from /proc (Linux): what each part of the system spends, so the
// `system` benchmark can say which process bounds the click rate. A tree is a root PID and every
// live descendant (the click process's cluster workers, PostgreSQL's backends); utime + stime of
// each process already covers all its threads (a JVM's GC and network threads included). A child
// that exits leaves /proc, and its time moves to its parent's cutime + cstime once the parent reaps
// it, so each process counts those too: a PostgreSQL backend that ends, an autovacuum worker or
// Redis's append-only-file rewrite (a forked child) during a step is in the step's figure.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux build in use). */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  ppid: number;
  /** utime + stime of the process itself plus cutime + cstime of the children it reaped, seconds. */
  cpu: number;
}

/**
 * A stat line's comm and the fields after it. comm may hold spaces and parentheses: the fields after
 * it start after the last ')'. rest[0] is field 3 (state), so field n is rest[n - 3].
 */
function statFields(text: string): { comm: string; rest: string[] } {
  const close = text.lastIndexOf(')');
  return { comm: text.slice(text.indexOf('(') + 1, close), rest: text.slice(close + 2).split(' ') };
}

/** Parses `/proc/<pid>/stat`: "pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17) ...". */
export function parseProcStat(text: string): ProcStat {
  const rest = statFields(text).rest;
  const ticks = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
  return { ppid: Number(rest[1]), cpu: ticks / TICKS_PER_SECOND };
}

/**
 * A JVM's just-in-time compiler threads: "C1 CompilerThread0", "C2 CompilerThread1", … (a thread's
 * comm is cut at 15 characters).
 */
const JIT_THREAD = /^C[12] CompilerThre/;

/** Parses a thread's `/proc/<pid>/task/<tid>/stat`: its name and its own utime + stime, seconds. */
export function parseThreadStat(text: string): { comm: string; cpu: number } {
  const { comm, rest } = statFields(text);
  // A thread's cutime and cstime are its process's (the children it reaped): not the thread's own.
  return { comm, cpu: (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND };
}

/** Whether a thread of that name is one of a JVM's JIT compiler threads. */
export function isJitThread(comm: string): boolean {
  return JIT_THREAD.test(comm);
}

/**
 * CPU seconds so far of the JIT compiler threads of each named process (0 for a process that is gone
 * or is no JVM). A JVM compiles its hottest code again and again in its first minutes under a load
 * (Pinot's SQL parser alone took a third of its compilations in one step): a step's figure for a JVM
 * started shortly before holds that warm-up. A compiler thread that the JVM stops takes its time with
 * it, so this is at least the compilers' time.
 */
export function jitCpuSeconds(pids: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    let sum = 0;
    let tids: string[] = [];
    try {
      if (pid !== undefined) tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      // gone
    }
    for (const tid of tids) {
      try {
        const t = parseThreadStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
        if (isJitThread(t.comm)) sum += t.cpu;
      } catch {
        // exited between the listing and the read
      }
    }
    out[name] = sum;
  }
  return out;
}

/** Every live process: pid → stat. */
function allProcesses(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      out.set(Number(name), parseProcStat(readFileSync(`/proc/${name}/stat`, 'utf8')));
    } catch {
      // exited between the listing and the read
    }
  }
  return out;
}

/** CPU seconds used so far by each named tree (0 for a root that is gone). */
export function treeCpuSeconds(roots: Record<string, number | undefined>): Record<string, number> {
  const procs = allProcesses();
  const children = new Map<number, number[]>();
  for (const [pid, s] of procs) {
    let list = children.get(s.ppid);
    if (!list) children.set(s.ppid, (list = []));
    list.push(pid);
  }
  const out: Record<string, number> = {};
  for (const [name, root] of Object.entries(roots)) {
    let sum = 0;
    const stack = root !== undefined && procs.has(root) ? [root] : [];
    while (stack.length > 0) {
      const pid = stack.pop()!;
      sum += procs.get(pid)?.cpu ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    out[name] = sum;
  }
  return out;
}

/** Busy and total CPU seconds of the whole machine (all cores) from /proc/stat. */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest times are inside user and nice)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!;
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
