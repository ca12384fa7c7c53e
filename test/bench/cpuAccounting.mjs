// CPU accounting for the benchmark: run one contender in a fresh process and tell whether other work used the CPU
// meanwhile.
//
// The machine's busy time comes from /proc/stat's aggregate "cpu" line (user + nice + system + irq + softirq + steal,
// in clock ticks; guest time is already inside user/nice). The contender's own CPU time is what the kernel adds to this
// process's cutime + cstime (/proc/self/stat) when it reaps the child: the child's every thread and every descendant it
// waited for. Whatever else the machine was busy with is other work; steal counts too, since time the hypervisor gave
// to another guest is time the contender could not have. Max RSS comes from /usr/bin/time (wait4's ru_maxrss: the
// largest single process of the tree), when it is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TIME = '/usr/bin/time';
const HAVE_TIME = (() => {
  try {
    fs.accessSync(TIME, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
})();

/** Clock ticks per second of /proc/stat and /proc/PID/stat (USER_HZ, 100 on every mainstream Linux). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function procStatLines() {
  return fs.readFileSync('/proc/stat', 'utf8').split('\n');
}

/** Online CPUs as /proc/stat counts them: the capacity its aggregate line adds up. */
export const CORES = procStatLines().filter((line) => /^cpu\d+ /.test(line)).length || os.cpus().length;

/** Seconds of CPU time the whole machine has been busy since boot, all cores together. */
export function machineBusySeconds() {
  const fields = procStatLines()
    .find((line) => line.startsWith('cpu '))
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const [user, nice, system, , , irq, softirq, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}

/** CPU seconds of this process's reaped children (cutime + cstime: fields 16 and 17 of /proc/self/stat). */
function reapedChildrenCpuSeconds() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3, the state
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
}

const selfCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/**
 * The rejection rule: a run is contended when other work took more than `fraction` of the machine's capacity over
 * the run (wall x cores), and at least `minSeconds` (below that, start-up jitter and tick granularity dominate).
 */
export function allowedOtherSeconds(wallSeconds, { fraction, minSeconds }) {
  return Math.max(minSeconds, fraction * wallSeconds * CORES);
}

/**
 * Runs `command args` to completion and accounts for the machine meanwhile. Returns its exit status, output, wall
 * seconds, own CPU seconds, busy cores (own CPU / wall), max RSS bytes (null without /usr/bin/time) and
 * otherCpuSeconds: machine busy time minus the child's and this runner's own.
 */
export function measuredRun(command, args, { env = {}, timeoutMs, cwd } = {}) {
  const rssFile = HAVE_TIME ? path.join(os.tmpdir(), `peft-bench-time-${process.pid}-${Date.now()}.txt`) : null;
  const [file, argv] = HAVE_TIME ? [TIME, ['-f', '%M', '-o', rssFile, command, ...args]] : [command, args];
  const busy0 = machineBusySeconds();
  const children0 = reapedChildrenCpuSeconds();
  const self0 = selfCpuSeconds();
  const started = performance.now();
  const result = spawnSync(file, argv, {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    env: { ...process.env, ...env },
    timeout: timeoutMs,
    cwd,
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const selfSeconds = selfCpuSeconds() - self0;
  const cpuSeconds = reapedChildrenCpuSeconds() - children0;
  const busySeconds = machineBusySeconds() - busy0;
  let maxRssBytes = null;
  if (rssFile) {
    try {
      // On failure time writes "Command exited with non-zero status N" first; the figure is the last line.
      const lines = fs.readFileSync(rssFile, 'utf8').trim().split('\n');
      const kib = Number(lines[lines.length - 1]);
      if (Number.isFinite(kib) && kib > 0) maxRssBytes = kib * 1024;
    } catch {
      // no file: the command could not start
    }
    fs.rmSync(rssFile, { force: true });
  }
  return {
    status: result.error ? null : result.status,
    error: result.error?.message,
    signal: result.signal,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    wallSeconds,
    cpuSeconds,
    busyCores: cpuSeconds / wallSeconds,
    maxRssBytes,
    machineBusySeconds: busySeconds,
    otherCpuSeconds: Math.max(0, busySeconds - cpuSeconds - selfSeconds),
  };
}

/**
 * Runs `fn` in this process (for in-process measurements such as the MatMul peak) with the same accounting: own CPU
 * is this process's, all threads.
 */
export async function measuredInProcess(fn) {
  const busy0 = machineBusySeconds();
  const self0 = selfCpuSeconds();
  const started = performance.now();
  const value = await fn();
  const wallSeconds = (performance.now() - started) / 1000;
  const cpuSeconds = selfCpuSeconds() - self0;
  const busySeconds = machineBusySeconds() - busy0;
  return {
    value,
    wallSeconds,
    cpuSeconds,
    busyCores: cpuSeconds / wallSeconds,
    otherCpuSeconds: Math.max(0, busySeconds - cpuSeconds),
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Before retrying a rejected run: waits (up to `maxSeconds`) for a second in which the machine was busy less than
 * `fraction` of its capacity. Returns the seconds waited.
 */
export async function waitForQuiet({ fraction, maxSeconds = 30 }) {
  const started = performance.now();
  for (;;) {
    const busy0 = machineBusySeconds();
    await sleep(1000);
    const quiet = machineBusySeconds() - busy0 < fraction * CORES;
    const waited = (performance.now() - started) / 1000;
    if (quiet || waited >= maxSeconds) return waited;
  }
}
