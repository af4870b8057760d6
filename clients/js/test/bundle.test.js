// The demo page's copy of the client (compiled into sumu-local, so cargo build needs no Node)
// must be exactly what scripts/bundle.js makes from src/ now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { bundle, BUNDLE_PATH } from '../scripts/bundle.js';

test('local/sumu-local/demo/sumu-client.js is up to date with clients/js/src (else: npm run bundle)', async () => {
  const committed = await readFile(BUNDLE_PATH, 'utf8').catch(() => '');
  const fresh = await bundle();
  assert.ok(committed === fresh, `${BUNDLE_PATH} is stale or missing: run \`npm run bundle\` in clients/js and commit it`);
  assert.match(fresh, /export \{[^}]*SumuClient/);
});
