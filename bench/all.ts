/**
 * `npm run bench`: every `bench:*` script of package.json in turn, each rewriting its section of
 * BENCHMARKS.md; the exit code is 1 when any of them failed or missed a target.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const { scripts } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const failed: string[] = [];
for (const name of Object.keys(scripts).filter((s) => s.startsWith('bench:'))) {
  process.stdout.write(`\n> npm run ${name}\n`);
  if (spawnSync('npm', ['run', '-s', name], { stdio: 'inherit' }).status !== 0) failed.push(name);
}
if (failed.length) {
  process.stderr.write(`\nFailed or missed a target: ${failed.join(', ')}\n`);
  process.exitCode = 1;
}
