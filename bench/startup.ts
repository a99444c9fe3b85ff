/**
 * Startup: the command of `npm start` (package.json's start script, run by sh as npm would, without npm
 * itself and its compile-if-stale pre-script; the Docker image runs the same command with the same env) on an empty data dir with the
 * full demo (86,000 channels, ten agencies, their accounts, the simulated cameras), timed from spawn to
 * the first /readyz 200, and its resident set right then — as `top` shows it, no forced collection. Then
 * the same data dir again (restart). Baseline in the same run: bare node + Fastify listening, spawn to
 * first 200. Goals (issue 12): first start ≤ 3 s and ≤ 200 MB, restart ≤ 1.5 s and ≤ 150 MB.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { cpuSeconds, log, result, root, rssMb } from './lib.js';

const RUNS = Number(process.env.STARTUP_RUNS ?? 3);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface Start {
  ms: number;
  rssMb: number;
  /** CPU (user + system) the process used to get there: steadier than wall time on a shared machine. */
  cpuS: number;
}

/** Spawns `args`, polls `url` every 10 ms until 200, reads the child's RSS at that moment, stops it. */
async function timeToReady(args: string[], url: (port: number) => string, env: Record<string, string>, command = process.execPath): Promise<Start> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...env, BROKER_PORT: String(port), BARE_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
      const ok = await fetch(url(port)).then((r) => r.status === 200, () => false);
      if (ok) {
        const ms = performance.now() - started;
        return { ms, rssMb: rssMb(child.pid!), cpuS: cpuSeconds(child.pid!) };
      }
      if (performance.now() - started > 120_000) throw new Error(`${args.join(' ')} not ready in 120 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    await exited;
  }
}

const BARE = `
const app = (await import('fastify')).default();
app.get('/readyz', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.BARE_PORT) });
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function startupBench(): Promise<void> {
  if (!existsSync(join(root, 'dist/main.js'))) throw new Error('dist/main.js missing: run `npm run build` first');
  const startScript = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  // `exec`: the shell becomes the broker, so the pid whose memory is read is the broker's.
  const npmStart = ['-c', startScript.replace(/(^|\s)node\s/, '$1exec node ')];
  log(`npm start runs: ${startScript}`);
  const ports = async () => ({
    BROKER_MEDIA: 'embedded',
    BROKER_MEDIA_RTMP_PORT: String(await freePort()),
    BROKER_MEDIA_HTTP_PORT: String(await freePort()),
    BROKER_MEDIA_CONTROL_PORT: String(await freePort()),
    BROKER_SIMULATOR_RTMP_PORT: String(await freePort()),
  });
  const bare: Start[] = [];
  const first: Start[] = [];
  const restart: Start[] = [];
  for (let run = 0; run < RUNS; run++) {
    bare.push(await timeToReady(['--input-type=module', '-e', BARE], (p) => `http://127.0.0.1:${p}/readyz`, {}));
    const dataDir = mkdtempSync(join(tmpdir(), 'se-startup-'));
    try {
      const env = { ...(await ports()), BROKER_DATA_DIR: dataDir, BROKER_DEMO: 'auto', BROKER_LOG_LEVEL: 'warn' };
      const readyz = (p: number) => `http://127.0.0.1:${p}/readyz`;
      first.push(await timeToReady(npmStart, readyz, env, '/bin/sh'));
      restart.push(await timeToReady(npmStart, readyz, env, '/bin/sh'));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    const show = (s: Start) => `${Math.round(s.ms)} ms ${s.rssMb} MB cpu ${s.cpuS.toFixed(2)} s`;
    log(`run ${run + 1}: bare ${show(bare[run]!)}; first start ${show(first[run]!)}; restart ${show(restart[run]!)}`);
  }
  const pick = (xs: Start[]) => ({ ms: Math.round(median(xs.map((x) => x.ms))), rssMb: median(xs.map((x) => x.rssMb)), cpuS: median(xs.map((x) => x.cpuS)) });
  const b = pick(bare);
  const f = pick(first);
  const r = pick(restart);
  log(`medians of ${RUNS}: bare node + fastify ${b.ms} ms ${b.rssMb} MB cpu ${b.cpuS} s; first start ${f.ms} ms ${f.rssMb} MB cpu ${f.cpuS} s (goal ≤ 3000 ms, ≤ 200 MB); restart ${r.ms} ms ${r.rssMb} MB cpu ${r.cpuS} s (goal ≤ 1500 ms, ≤ 150 MB)`);
  log(`load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores`);
  result('startup', f.ms, 'ms to /readyz 200, first start with the full demo', b.ms, {
    firstStart: { ms: f.ms, rssMb: f.rssMb, cpuS: f.cpuS },
    restart: { ms: r.ms, rssMb: r.rssMb, cpuS: r.cpuS, ratio: Math.round((r.ms / b.ms) * 100) / 100 },
    bare: { ms: b.ms, rssMb: b.rssMb, cpuS: b.cpuS },
    goals: { firstStartMs: 3000, firstStartRssMb: 200, restartMs: 1500, restartRssMb: 150 },
  });
}
