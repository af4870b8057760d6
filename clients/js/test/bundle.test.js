// The demo page's copy of the client (compiled into sumu-local, so cargo build needs no Node)
// must be exactly what scripts/bundle.js makes from src/ now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundle, size, BUNDLE_PATH } from '../scripts/bundle.js';

test('local/sumu-local/demo/sumu-client.js is up to date with clients/js/src (else: npm run bundle)', async () => {
  const committed = await readFile(BUNDLE_PATH, 'utf8').catch(() => '');
  const fresh = await bundle();
  assert.ok(committed === fresh, `${BUNDLE_PATH} is stale or missing: run \`npm run bundle\` in clients/js and commit it`);
  assert.match(fresh, /export \{[^}]*SumuClient/);
});

test('the client stays small: under 8 kB minified and gzipped (npm run size)', async () => {
  const { gzipped } = await size();
  assert.ok(gzipped < 8_000, `${gzipped} bytes`);
});

test('the modules of src/ do not import each other in circles', () => {
  const dir = fileURLToPath(new URL('../src/', import.meta.url));
  const imports = new Map(readdirSync(dir).filter((file) => file.endsWith('.ts')).map((file) => [
    file.replace(/\.ts$/, ''),
    [...readFileSync(`${dir}${file}`, 'utf8').matchAll(/from '\.\/([a-z-]+)\.js'/g)].map((match) => match[1]),
  ]));
  assert.ok(imports.size >= 8, 'split by concern');
  const done = new Set();
  const visit = (module, path) => {
    assert.ok(!path.includes(module), `a circle: ${[...path, module].join(' → ')}`);
    if (done.has(module)) return;
    for (const next of imports.get(module) ?? []) visit(next, [...path, module]);
    done.add(module);
  };
  for (const module of imports.keys()) visit(module, []);
});
