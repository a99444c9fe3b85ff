/**
 * Benchmark plumbing: servers run in child processes (the load generator keeps this one), each
 * figure is printed next to a baseline measured in the same run, as a ratio.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { createClient } from 'redis';

export const root = fileURLToPath(new URL('..', import.meta.url));

export interface Server<T> {
  child: ChildProcess;
  info: T;
  stop(): Promise<void>;
}

/** Starts `node --import tsx <script>` and waits for the JSON line it prints when ready. */
export async function startServer<T>(script: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Server<T>> {
  // BENCH_PROFILE=<dir>: every server of the run writes a CPU profile there (`node --cpu-prof`) when it stops.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // a server that never got ready must not outlive the bench
      reject(new Error(`${script} not ready in ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as T);
    });
  });
  return {
    child,
    info,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

/** Resident memory of a process, from /proc (what the operator's `top` shows). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

export function result(bench: string, value: number, unit: string, baseline: number, extra: Record<string, unknown> = {}) {
  const round = (n: number) => Math.round(n * 100) / 100;
  console.log(JSON.stringify({ bench, value: round(value), unit, baseline: round(baseline), ratio: round(value / baseline), ...extra }));
}

/** A Redis key prefix no other run uses (the broker's prefix pattern: letters, digits, `_`, `-`). */
export const uniqueRedisPrefix = (bench: string) => `bench-${bench}-${Date.now().toString(36)}-${process.pid}`;

/** Deletes every key of one run (SCAN + DEL, never FLUSHDB: other runs and tests share this Redis). */
export async function dropRedisKeys(prefix: string, url = process.env.BROKER_REDIS_URL ?? 'redis://127.0.0.1:6379'): Promise<number> {
  const client = createClient({ url });
  await client.connect();
  let deleted = 0;
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      if (keys.length > 0) deleted += await client.del(keys);
    }
  } finally {
    await client.close();
  }
  return deleted;
}

export const log = (...args: unknown[]) => console.error('#', ...args);
