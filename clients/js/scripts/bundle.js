// Bundles the package:
//   node scripts/bundle.js          writes local/sumu-local/demo/sumu-client.js, the ES module the
//                                   demo page imports (sumu-local compiles it into its binary, so
//                                   `cargo build` needs no Node; test/bundle.test.js checks it is
//                                   what this script makes from src/)
//   node scripts/bundle.js --cjs    writes dist/index.cjs, the CommonJS build (`require`)
//   node scripts/bundle.js --size   prints the minified and gzipped size of the whole client
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const BUNDLE_PATH = fileURLToPath(new URL('../../../local/sumu-local/demo/sumu-client.js', import.meta.url));
const ENTRY = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const CJS_PATH = fileURLToPath(new URL('../dist/index.cjs', import.meta.url));

const common = { entryPoints: [ENTRY], bundle: true, target: 'es2020', charset: 'utf8', legalComments: 'none', write: false };

export async function bundle() {
  const result = await build({
    ...common,
    format: 'esm',
    banner: {
      js: '// @sumu/client, bundled for the demo page by clients/js/scripts/bundle.js. Do not edit:\n'
        + '// change clients/js/src/ and run `npm run bundle` in clients/js (a test checks this file).',
    },
  });
  return result.outputFiles[0].text;
}

export async function cjs() {
  const result = await build({ ...common, format: 'cjs', platform: 'neutral' });
  return result.outputFiles[0].text;
}

/** Bytes of the minified ES module bundle, and of that gzipped (what a browser downloads). */
export async function size() {
  const result = await build({ ...common, format: 'esm', minify: true });
  const bytes = result.outputFiles[0].contents;
  return { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--size')) {
    const { minified, gzipped } = await size();
    console.log(`minified ${minified} bytes, minified+gzipped ${gzipped} bytes (${(gzipped / 1000).toFixed(1)} kB)`);
  } else if (process.argv.includes('--cjs')) {
    await writeFile(CJS_PATH, await cjs()); // quietly: `npm pack --json` runs it (prepack)
  } else {
    await writeFile(BUNDLE_PATH, await bundle());
    console.log(`wrote ${BUNDLE_PATH}`);
  }
}
