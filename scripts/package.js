#!/usr/bin/env node
// `npm run package [-- --out DIR]`: the tarball a node installs (README, docs/install.md).
//
// `npm pack` in the checkout would bundle every production dependency as it lies in node_modules:
// better-sqlite3's C sources and its amalgamated sqlite3.c (the addon is already compiled, in
// dist/native), and the tests, docs and type declarations of a hundred packages, none of which a
// node runs. So the package is packed from a staging copy holding the files a node needs: the
// build, the config, deploy, systemd and dashboards folders, and each production dependency
// without what only its authors or a compiler use. Every dependency keeps its folder and its
// package.json, so `npm install --offline` of the tarball finds the whole bundled tree.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

// Folders at the top of a dependency, and files at any depth, that a running daemon never reads.
const SKIP_DIRS = new Set(['test', 'tests', '__tests__', 'docs', 'doc', 'example', 'examples', 'bench', 'benchmark', 'benchmarks', '.github', 'coverage']);
const SKIP_FILE = /(\.md|\.markdown|\.map|\.d\.ts|\.d\.mts|\.d\.cts|\.ts|\.tsbuildinfo|\.gyp|\.gypi|\.c|\.cc|\.cpp|\.h|\.hpp)$/i;
const KEEP_FILE = /^(license|licence|notice|copying)/i;
// better-sqlite3's loader is lib/; the addon a node loads is dist/native's.
const PER_PACKAGE_SKIP = { 'better-sqlite3': new Set(['deps', 'src', 'build']) };

function parseArgs(argv) {
  let out = root;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = path.resolve(argv[++i] ?? '');
    else throw new Error(`unknown argument ${argv[i]} (usage: package.js [--out DIR])`);
  }
  return { out };
}

function copyTree(from, to, skipTop = new Set()) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) {
      // Nested dependencies are copied as packages of their own, from npm's list.
      if (entry.name === 'node_modules' || skipTop.has(entry.name)) continue;
      copyTree(source, target);
    } else if (entry.isFile()) {
      if (SKIP_FILE.test(entry.name) && !KEEP_FILE.test(entry.name) && entry.name !== 'package.json') continue;
      fs.copyFileSync(source, target);
    } else if (entry.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(source), target);
    }
  }
}

function productionPackages() {
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return listed.split('\n').filter((p) => p && p !== root && p.startsWith(path.join(root, 'node_modules')));
}

function stage(dir) {
  for (const entry of pkg.files) {
    const from = path.join(root, entry);
    if (!fs.existsSync(from)) throw new Error(`${entry} is missing: run npm run build first`);
    fs.cpSync(from, path.join(dir, entry), { recursive: true });
  }
  for (const file of ['README.md', 'LICENSE']) {
    if (fs.existsSync(path.join(root, file))) fs.copyFileSync(path.join(root, file), path.join(dir, file));
  }
  const staged = { ...pkg };
  delete staged.devDependencies;
  delete staged.scripts;
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(staged, null, 2) + '\n');
  for (const from of productionPackages()) {
    const relative = path.relative(root, from);
    const skipTop = new Set([...SKIP_DIRS, ...(PER_PACKAGE_SKIP[path.basename(from)] ?? [])]);
    copyTree(from, path.join(dir, relative), skipTop);
  }
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(root, 'dist', 'native'))) throw new Error('dist/native is missing: run npm run build first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-package-'));
  try {
    stage(dir);
    fs.mkdirSync(out, { recursive: true });
    const name = execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8', timeout: 300_000 }).trim().split('\n').pop();
    process.stdout.write(`${path.join(out, name)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
