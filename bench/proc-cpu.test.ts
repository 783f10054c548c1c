import { describe, expect, it } from 'vitest';
import { parseProcStat } from './proc-cpu.js';

describe('parseProcStat', () => {
  it('counts the process and the children it reaped, after a comm with spaces and parentheses', () => {
    // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime(150) stime(50) cutime(300) cstime(100) …
    const line = '4242 (redis (aof) x) S 7 4242 4242 0 -1 4194560 10 0 0 0 150 50 300 100 20 0 4 0';
    expect(parseProcStat(line)).toEqual({ ppid: 7, cpu: (150 + 50 + 300 + 100) / 100 });
  });
});
