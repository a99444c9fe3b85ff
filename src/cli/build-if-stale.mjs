// pre-scripts of `npm start` and the operator commands: compile only when a source file is newer than the
// last build, so they are fast on a fresh install (built by `prepare`) and still right after a code change.
// A deployed copy (the Docker image) has dist/ but neither the TypeScript sources nor the compiler: there
// the compiled files are what runs, as they are.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const compiler = 'node_modules/typescript/bin/tsc';
if (!existsSync('tsconfig.build.json') || !existsSync(compiler)) {
  if (!existsSync('dist/main.js')) {
    process.stderr.write('dist/ is missing and there is no TypeScript compiler here to build it (npm ci, then npm run build)\n');
    process.exit(1);
  }
  process.exit(0);
}
const built = (() => {
  try {
    return statSync('dist/.tsbuildinfo').mtimeMs;
  } catch {
    return 0;
  }
})();
const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((max, entry) => {
    const path = join(dir, entry.name);
    return Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }, 0);
if (Math.max(newest('src'), statSync('tsconfig.json').mtimeMs, statSync('tsconfig.build.json').mtimeMs) > built) {
  execFileSync(process.execPath, [compiler, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
