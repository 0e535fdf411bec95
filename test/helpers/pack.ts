/**
 * pack.ts: the package as users get it, and fresh projects that install it without a compiler or
 * the network (test/e2e/package.test.ts).
 *
 * packOnce() makes the tarball the way `npm pack` / `npm publish` do in a checkout, but in a staging
 * copy: the checkout's files (`npm pack --ignore-scripts`, unpacked) with its node_modules linked
 * in, where `npm pack` runs prepack (scripts/prebuild.js: the CPU prebuild) and prepare (tsc ->
 * dist/). The checkout's build/, dist/ and prebuilds/ are never written.
 *
 * Projects install with `npm install --offline`: every package comes from npm's cache, which the
 * checkout's own `npm install` filled. npm 11 asks the registry for full package documents when it
 * resolves a range (the cache holds only the abbreviated ones a lockfile install fetches), so a
 * project gets a package-lock.json made of the checkout's own lock entries for the packages it
 * needs (pstal's dependencies, and e.g. typescript and ts-node): npm then needs only the tarballs,
 * by integrity, from the cache.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface Packed {
  /** the tarball */
  tarball: string;
  /** the files in it, without the leading package/ */
  files: string[];
}

function npmPack(cwd: string, dest: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest, ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  // npm prints the lifecycle scripts' output before the JSON: the JSON is the last [ ... ] block
  const json = out.slice(out.lastIndexOf('\n[') + 1 || out.indexOf('['));
  const [info] = JSON.parse(json) as { filename: string }[];
  return path.join(dest, info.filename);
}

/** The package tarball, made as `npm pack` makes it in a checkout (scripts run) but in a staging copy under `tmp`. */
export function packOnce(tmp: string, env: NodeJS.ProcessEnv = process.env): Packed {
  const source = npmPack(ROOT, tmp, ['--ignore-scripts']);
  execFileSync('tar', ['xzf', source, '-C', tmp]);
  fs.rmSync(source);
  const staging = path.join(tmp, 'package');
  // what the checkout happens to have is not packed: prepack and prepare make them
  for (const made of ['prebuilds', 'dist']) fs.rmSync(path.join(staging, made), { recursive: true, force: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(staging, 'node_modules'), 'dir');
  const dist = path.join(tmp, 'dist');
  fs.mkdirSync(dist);
  const tarball = npmPack(staging, dist, [], env);
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8', maxBuffer: 64 << 20 })
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  fs.rmSync(staging, { recursive: true, force: true });
  return { tarball, files };
}

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [k: string]: unknown;
}

/**
 * package-lock.json `packages` entries for `names` and everything they need, taken from the
 * checkout's lock (flags such as dev: true dropped: npm works them out again).
 */
export function lockEntriesFor(names: string[]): Record<string, LockEntry> {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packages = lock.packages;
  const out: Record<string, LockEntry> = {};
  /** where node finds `name` from the package at `from` ('' = the project) */
  const resolve = (from: string, name: string): string | undefined => {
    let dir = from;
    for (;;) {
      const p = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
      if (packages[p]) return p;
      if (!dir) return undefined;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
  };
  const queue: [string, string, boolean][] = names.map((n) => ['', n, false]);
  while (queue.length) {
    const [from, name, optional] = queue.shift()!;
    const p = resolve(from, name);
    if (!p) {
      if (optional) continue;
      throw new Error(`the checkout's package-lock.json has no ${name} (needed by ${from || 'the project'}): run npm install`);
    }
    if (out[p]) continue;
    const { dev, devOptional, peer, extraneous, ...entry } = packages[p] as LockEntry & Record<'dev' | 'devOptional' | 'peer' | 'extraneous', unknown>;
    void dev, void devOptional, void peer, void extraneous;
    out[p] = entry;
    for (const d of Object.keys(entry.dependencies ?? {})) queue.push([p, d, false]);
    for (const d of Object.keys(entry.optionalDependencies ?? {})) queue.push([p, d, true]);
    for (const d of Object.keys(entry.peerDependencies ?? {})) queue.push([p, d, Boolean(entry.peerDependenciesMeta?.[d]?.optional)]);
  }
  return out;
}

/** A folder of failing stand-ins for every compiler and build tool: a test fails if an install calls one. */
export function noCompilers(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const tool of ['cc', 'c++', 'g++', 'gcc', 'clang', 'clang++', 'make', 'cmake', 'node-gyp', 'nvcc'])
    fs.writeFileSync(path.join(dir, tool), '#!/bin/sh\necho "compiler called: $0" >&2; exit 1\n', { mode: 0o755 });
  return dir;
}

/**
 * A fresh project in `dir` depending on the tarball (and `tarballs`: name -> another tarball, and
 * `extra`: name -> range, resolved from the checkout's lock), installed with `npm install --offline`
 * plus `npmArgs`; returns npm's output.
 */
export function installProject(
  dir: string,
  tarball: string,
  o: { extra?: Record<string, string>; tarballs?: Record<string, string>; npmArgs?: string[]; env: NodeJS.ProcessEnv; packageJson?: Record<string, unknown> },
): string {
  fs.mkdirSync(dir, { recursive: true });
  const pkg = JSON.parse(execFileSync('tar', ['xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as {
    name: string;
    dependencies?: Record<string, string>;
    optionalDependencies?: Record<string, string>;
  };
  const files = Object.fromEntries(Object.entries(o.tarballs ?? {}).map(([n, f]) => [n, `file:${path.relative(dir, f)}`]));
  const dependencies = { [pkg.name]: `file:${path.relative(dir, tarball)}`, ...files, ...(o.extra ?? {}) };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, ...(o.packageJson ?? {}), dependencies }, null, 2));
  const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(o.extra ?? {})];
  const entries = lockEntriesFor(names);
  // the package's optional dependencies, where the checkout's lock has them (else npm leaves them out offline)
  for (const [p, e] of Object.entries(lockEntriesFor(Object.keys(pkg.optionalDependencies ?? {}).filter((n) => lockHas(n))))) entries[p] ??= { ...e, optional: true };
  const lock = { name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'app', version: '1.0.0', dependencies: o.extra ?? {} }, ...entries } };
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2));
  const args = ['install', '--offline', '--no-audit', '--no-fund', ...(o.npmArgs ?? [])];
  const r = spawnSync('npm', args, { cwd: dir, env: o.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const output = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} in ${dir} failed (${r.status ?? r.signal}):\n${output}`);
  return output;
}

function lockHas(name: string): boolean {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  return Boolean(lock.packages[`node_modules/${name}`]);
}
