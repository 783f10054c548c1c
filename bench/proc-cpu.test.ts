import { describe, expect, it } from 'vitest';
import { isJitThread, parseProcStat, parseThreadStat } from './proc-cpu.js';

describe('parseProcStat', () => {
  it('counts the process and the children it reaped, after a comm with spaces and parentheses', () => {
    // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime(150) stime(50) cutime(300) cstime(100) …
    const line = '4242 (redis (aof) x) S 7 4242 4242 0 -1 4194560 10 0 0 0 150 50 300 100 20 0 4 0';
    expect(parseProcStat(line)).toEqual({ ppid: 7, cpu: (150 + 50 + 300 + 100) / 100 });
  });
});

describe('parseThreadStat', () => {
  it("reads a JVM compiler thread's name (with its space) and only its own time", () => {
    const line = '977 (C2 CompilerThre) S 1 960 960 0 -1 4194624 5 0 0 0 321 12 300 100 20 0 40 0';
    const t = parseThreadStat(line);
    expect(t).toEqual({ comm: 'C2 CompilerThre', cpu: (321 + 12) / 100 });
    expect(isJitThread(t.comm)).toBe(true);
  });
  it("tells the compilers from a JVM's other threads", () => {
    expect(isJitThread('C1 CompilerThre')).toBe(true);
    expect(isJitThread('data-plane-kafk')).toBe(false);
    expect(isJitThread('VM Thread')).toBe(false);
  });
});
