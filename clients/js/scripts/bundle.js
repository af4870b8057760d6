// Bundles the package into one ES module for the demo page, which sumu-local compiles into its
// binary (local/sumu-local/src/demo.rs): `cargo build` needs no Node because the bundle is
// committed, and test/bundle.test.js fails when it is not what this script makes from src/.
//   node scripts/bundle.js          writes local/sumu-local/demo/sumu-client.js
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const BUNDLE_PATH = fileURLToPath(new URL('../../../local/sumu-local/demo/sumu-client.js', import.meta.url));

export async function bundle() {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    charset: 'utf8',
    legalComments: 'none',
    write: false,
    banner: {
      js: '// @sumu/client, bundled for the demo page by clients/js/scripts/bundle.js. Do not edit:\n'
        + '// change clients/js/src/ and run `npm run bundle` in clients/js (a test checks this file).',
    },
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(BUNDLE_PATH, await bundle());
  console.log(`wrote ${BUNDLE_PATH}`);
}
