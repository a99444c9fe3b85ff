/**
 * Runs as deployed: the Docker image's runtime stage holds what its COPY lines name (compiled dist/, the
 * pruned node_modules, config, policies, web, the Lua scripts) and no TypeScript, no tsx. This test reads the
 * Dockerfile, builds that file list from this tree after a build, stages it in a temp dir and runs every
 * operator command there the way package.json runs it (pre-script, then `node …`): the broker answers
 * /readyz on the memory and the Redis store, a media node and the camera simulator come up, the CLIs answer
 * their usage. And no compiled file imports a package the image prunes (a devDependency).
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeTempDir, until } from '../helper.js';
import { freePort, root } from '../process/helpers.js';
import { stopProcess, waitForLine } from '../media/helpers.js';
import { testPrefix } from '../store/redis/harness.js';

const OPERATOR_COMMANDS = ['start', 'media-node', 'import', 'report', 'audit:verify', 'simulate'];
/** Named in dist/ but only reached from sources: media-node-child.ts resolves tsx only when it runs as .ts. */
const SOURCE_ONLY = new Set(['tsx']);

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
interface Stage {
  name?: string;
  workdir: string;
  copies: Copy[];
}

/** FROM … [AS name], WORKDIR, COPY [--from=stage] src… dest, with `\` continuations joined. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [instruction, ...args] = line.split(/\s+/);
    const stage = stages[stages.length - 1];
    if (instruction!.toUpperCase() === 'FROM') {
      const as = args.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({ name: as >= 0 ? args[as + 1] : undefined, workdir: '/', copies: [] });
    } else if (instruction!.toUpperCase() === 'WORKDIR') {
      stage!.workdir = args[0]!;
    } else if (instruction!.toUpperCase() === 'COPY') {
      const from = args.find((a) => a.startsWith('--from='))?.slice('--from='.length);
      const paths = args.filter((a) => !a.startsWith('--'));
      stage!.copies.push({ from, sources: paths.slice(0, -1), dest: paths[paths.length - 1]! });
    }
  }
  return stages;
}

/** Where a COPY lands, relative to the runtime stage's WORKDIR. */
function relativeDest(stage: Stage, copy: Copy, source: string): string {
  const dest = copy.dest.startsWith('/') ? copy.dest : join(stage.workdir, copy.dest);
  const base = dest.endsWith('/') ? join(dest, source.split('/').pop()!) : dest;
  const rel = base.startsWith(stage.workdir) ? base.slice(stage.workdir.length).replace(/^\/+/, '') : base;
  return rel === '' ? '.' : rel;
}

/** The command of one npm script as argv (`[VAR=${VAR:-default} …] node [flags] file [args]`), else undefined. */
function nodeArgv(script: string | undefined): string[] | undefined {
  if (!script) return undefined;
  const words = script.split(/\s+/).filter((w) => !/^[A-Z_]+=/.test(w));
  return words[0] === 'node' ? words.slice(1) : undefined;
}
const entryOf = (argv: string[]) => argv.find((a) => !a.startsWith('-'))!;

function run(cwd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, argv, { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.js')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

t.test('the Docker runtime stage holds every operator command and runs each without sources or dev tools', async (t) => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
  // What `npm start` does first: build when the sources are newer than dist/.
  const build = run(root, ['src/cli/build-if-stale.mjs']);
  t.equal(build.code, 0, `build-if-stale builds dist/ (${build.stderr})`);

  const stages = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'));
  t.ok(stages.length >= 2, 'a build stage and a runtime stage');
  const runtime = stages[stages.length - 1]!;
  const buildStage = stages.find((s) => s.name !== undefined && runtime.copies.some((c) => c.from === s.name));
  t.ok(buildStage, 'the runtime stage copies from the build stage');
  t.equal(buildStage?.workdir, runtime.workdir, 'both stages work in the same directory (paths below are relative to it)');

  // The runtime file list: each COPY's sources, from the build context or from the build stage's WORKDIR —
  // which, after `npm ci` and the build, is this tree.
  const list: Array<{ source: string; dest: string }> = [];
  for (const copy of runtime.copies) {
    for (const source of copy.sources) {
      const local = copy.from ? source.replace(new RegExp(`^${buildStage!.workdir}/?`), '') : source;
      t.ok(existsSync(join(root, local)), `COPY ${copy.from ? `--from=${copy.from} ` : ''}${source}: exists after the build`);
      list.push({ source: local, dest: relativeDest(runtime, copy, local) });
    }
  }
  const inImage = (file: string) => list.some(({ dest }) => dest === '.' || file === dest || file.startsWith(`${dest.replace(/\/$/, '')}/`));
  t.notOk(inImage('src/main.ts') || inImage('tsconfig.json'), 'no TypeScript sources in the image');

  for (const name of OPERATOR_COMMANDS) {
    const argv = nodeArgv(pkg.scripts[name]);
    t.ok(argv, `npm run ${name} runs node directly (${pkg.scripts[name]}), not tsx`);
    if (!argv) continue;
    const entry = entryOf(argv);
    t.match(entry, /^dist\/.*\.js$/, `npm run ${name} runs compiled ${entry}`);
    t.ok(existsSync(join(root, entry)), `${entry} is built`);
    t.ok(inImage(entry), `${entry} is in the image`);
    const pre = nodeArgv(pkg.scripts[`pre${name}`]);
    t.ok(pre, `npm run ${name} has a pre-script that builds when stale`);
    if (pre) t.ok(inImage(entryOf(pre)), `its pre-script ${entryOf(pre)} is in the image`);
  }

  // Every package a compiled file imports survives `npm prune --omit=dev`.
  const builtins = new Set(builtinModules);
  const imported = new Set<string>();
  for (const file of await filesUnder(join(root, 'dist'))) {
    const code = await readFile(file, 'utf8');
    for (const m of code.matchAll(/(?:(?<=[\s}])from\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|Require\([^)]*\)\s*\(\s*|\.resolve\(\s*)['"]([@\w][\w@/.-]*)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('node:') || builtins.has(spec.split('/')[0]!)) continue;
      imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  t.ok(imported.has('fastify'), 'the scan sees the imports');
  for (const name of imported) if (!SOURCE_ONLY.has(name)) t.ok(pkg.dependencies[name], `${name} (imported by dist/) is a runtime dependency`);

  // Stage the image's /app: copies of everything listed, node_modules linked (its production part is what runs).
  const app = await makeTempDir(t, 'se-image-');
  for (const { source, dest } of list) {
    if (source === 'node_modules') {
      await symlink(join(root, 'node_modules'), join(app, dest));
      continue;
    }
    await mkdir(join(app, dest, '..'), { recursive: true });
    await cp(join(root, source), join(app, dest), { recursive: true });
  }
  t.notOk(existsSync(join(app, 'tsconfig.build.json')), 'staged without the build config');
  const pre = nodeArgv(pkg.scripts.prestart)!;
  const skipped = run(app, pre);
  t.equal(skipped.code, 0, `the pre-script runs dist/ as it is when there is nothing to compile with (${skipped.stderr})`);

  const cmd = (name: string) => nodeArgv(pkg.scripts[name])!;
  for (const name of ['import', 'report', 'audit:verify']) {
    const r = run(app, cmd(name));
    t.equal(r.code, 2, `npm run ${name} without arguments loads from dist/ and exits 2 (${r.stderr.trim().split('\n')[0]})`);
    t.match(r.stderr, /usage/, `npm run ${name} prints its usage`);
  }

  t.test('npm start, memory and Redis store', async (t) => {
    for (const env of [{ BROKER_STORE: 'memory' }, { BROKER_STORE: 'redis', BROKER_REDIS_PREFIX: testPrefix(t) }]) {
      const port = await freePort();
      const dataDir = await makeTempDir(t, 'se-image-data-');
      const child = spawn(process.execPath, cmd('start'), {
        cwd: app,
        env: { ...process.env, ...env, NODE_ENV: 'production', BROKER_PORT: String(port), BROKER_DATA_DIR: dataDir, BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_LOG_LEVEL: 'warn', BROKER_GB_SIP_PORT: '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      t.teardown(() => stopProcess(child));
      await until(t, `dist/main.js (${env.BROKER_STORE}) ready`, () => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false), 60_000);
      const console = await fetch(`http://127.0.0.1:${port}/`);
      t.equal(console.status, 200, `${env.BROKER_STORE}: /readyz 200 and the console (web/) is served`);
      await stopProcess(child);
      t.equal(child.exitCode, 0, `${env.BROKER_STORE}: SIGTERM drains and exits 0`);
    }
  });

  t.test('npm run media-node', async (t) => {
    const [rtmp, http, control] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(process.execPath, cmd('media-node'), {
      cwd: app,
      env: {
        ...process.env,
        MEDIA_NODE_ID: 'image-node',
        MEDIA_RTMP_PORT: String(rtmp),
        MEDIA_HTTP_PORT: String(http),
        MEDIA_CONTROL_PORT: String(control),
        MEDIA_CONTROL_SECRET: randomBytes(24).toString('hex'),
        MEDIA_PLAY_SECRET: randomBytes(24).toString('hex'),
        MEDIA_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => stopProcess(child));
    t.match(await waitForLine(child, /"event":"ready"/, 60_000), /ready/, 'the media node listens');
  });

  t.test('npm run simulate', async (t) => {
    const port = await freePort();
    const child = spawn(process.execPath, [...cmd('simulate'), '--cameras', '1', '--rtmp-port', String(port)], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => stopProcess(child));
    t.match(await waitForLine(child, /^rtmp:/, 60_000), `rtmp://127.0.0.1:${port}/`, 'the simulator serves its camera');
  });
});
