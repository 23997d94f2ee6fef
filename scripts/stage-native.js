#!/usr/bin/env node
// Part of `npm run build`: copies better-sqlite3's compiled addon into dist/native, named for the
// Node.js ABI it was built against. The npm tarball (`npm pack`, dependencies bundled) then
// carries a working addon, so a node installs it with --ignore-scripts and --offline: no
// compiler, no registry, no rebuild. better-sqlite3's own package leaves build/ out of its files.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const from = path.join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
const dir = path.join(root, 'dist', 'native');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(from, path.join(dir, `better_sqlite3-abi${process.versions.modules}.node`));
