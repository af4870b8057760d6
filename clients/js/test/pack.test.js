// The package as a user gets it: `npm pack`, install the tarball into a fresh project, import it
// from an ES module, and type-check consumer files (Node with `ws`, and a browser page) with
// `tsc --noEmit` under strict settings. No registry access: the tarball has no dependencies and
// the consumer borrows `ws`, its types and TypeScript from this package's node_modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const run = (command, args, cwd) => execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const NODE_CONSUMER = `
import { SumuClient, SumuRequestError, backoffDelay, type Ack, type ConnectionState, type Message, type Publication, type SubscriptionState, type SumuError, type PresenceAnswer, type ChannelEvent, type ChannelMembers, type Member } from '@sumu/client';
import WebSocket from 'ws';

const client = new SumuClient({
  url: 'ws://127.0.0.1:8080/dev',
  token: async () => 'a token',
  WebSocket,
  keepAliveMs: 60_000,
  maxConnectionMs: 60 * 60 * 1000,
  backoff: { baseMs: 500, maxMs: 10_000 },
  queueLimit: 10,
});
const states: ConnectionState[] = [];
const off = client.on('state', (state) => { states.push(state); });
client.on('error', (error: SumuError) => { const code: string = error.code; void code; });
client.on('message', (message: Message) => { const id: string = message.id; const data: unknown = message.data; void id; void data; });
const subscription = client.subscribe('room/42', (publication: Publication) => {
  const id: string = publication.id;
  const from: string | undefined = publication.from;
  void id; void from;
});
const state: SubscriptionState = subscription.state;
subscription.on('state', (next: SubscriptionState) => { void next; });
subscription.on('error', (error: SumuError) => { void error.reason; });
subscription.on('join', (event: ChannelEvent) => { const user: string = event.userId; const channel: string = event.channel; void user; void channel; });
subscription.on('leave', ({ userId }) => { const user: string = userId; void user; });
const members: Promise<ChannelMembers> = subscription.presence();
void members.then(({ members: list }) => list.map((m: Member) => m.userId.length + m.connections));
// @ts-expect-error: a join tells the user as userId
subscription.on('join', (event) => event.user_id);
const ready: Promise<void> = subscription.ready;
void ready.catch((error: unknown) => { if (error instanceof SumuRequestError) void error.code; }); void state;
subscription.unsubscribe();
const ack: Promise<Ack> = client.emit('room/42', { x: 1 }, { ack: true });
void ack.then((a) => a.id.length);
const sent: boolean = client.send({ hello: 'world' }) && client.publish([1, 2]) && client.emit('room/42', { x: 1 });
const answer: Promise<PresenceAnswer> = client.presence(['u1']);
void answer.catch(() => {}); void sent; void backoffDelay(3); off();
// @ts-expect-error: not an event of the client
client.on('nonsense', () => {});
// @ts-expect-error: the token is a function, called for every attempt
new SumuClient({ url: 'ws://x/dev', token: 'a token' });
// @ts-expect-error: a state the client never reports
const wrong: ConnectionState = 'disconnected';
void wrong;
client.close();
`;

const BROWSER_CONSUMER = `
import { SumuClient } from '@sumu/client';
// The DOM's WebSocket fits the client's WebSocketLike.
const client = new SumuClient({ url: 'wss://example.test/prod', token: () => 't', WebSocket });
client.on('publication', (publication) => { document.title = publication.channel; });
client.connect();
`;

test('npm pack → install into a fresh project → import from ESM → tsc --noEmit on consumers', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sumu-client-consumer-'));
  try {
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir, '--loglevel=error'], PACKAGE));
    const files = packed[0].files.map((file) => file.path).sort();
    for (const required of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/index.cjs', 'dist/client.js', 'dist/client.d.ts']) {
      assert.ok(files.includes(required), `the tarball has ${required} (has ${files.join(', ')})`);
    }
    assert.ok(!files.some((file) => file.startsWith('src/') || file.startsWith('test/')), 'no sources or tests in the tarball');
    const tarball = join(dir, packed[0].filename);

    const project = join(dir, 'consumer');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], project);
    const installed = JSON.parse(readFileSync(join(project, 'node_modules/@sumu/client/package.json'), 'utf8'));
    assert.equal(installed.name, '@sumu/client');
    assert.deepEqual(installed.dependencies ?? {}, {}, 'no runtime dependency');
    for (const name of ['ws', '@types/ws', '@types/node', 'undici-types']) {
      mkdirSync(join(project, 'node_modules', name, '..'), { recursive: true });
      symlinkSync(join(PACKAGE, 'node_modules', name), join(project, 'node_modules', name), 'dir');
    }

    writeFileSync(join(project, 'import.mjs'), `
      import { SumuClient, backoffCeiling } from '@sumu/client';
      import WebSocket from 'ws';
      const client = new SumuClient({ url: 'ws://127.0.0.1:9/dev', token: () => 't', WebSocket });
      console.log(JSON.stringify({ state: client.state, ceiling: backoffCeiling(2), type: typeof SumuClient }));
    `);
    assert.deepEqual(JSON.parse(run(process.execPath, ['import.mjs'], project)), { state: 'closed', ceiling: 4000, type: 'function' });
    // CommonJS consumers: require() gets the same API (dist/index.cjs, the `require` export).
    writeFileSync(join(project, 'require.cjs'), `
      const { SumuClient, SumuRequestError, backoffCeiling, FRAME_LIMIT } = require('@sumu/client');
      const WebSocket = require('ws');
      const client = new SumuClient({ url: 'ws://127.0.0.1:9/dev', token: () => 't', WebSocket });
      const handle = client.subscribe('room/1');
      console.log(JSON.stringify({ state: client.state, sub: handle.state, ceiling: backoffCeiling(2), limit: FRAME_LIMIT, error: new SumuRequestError('timeout', 'x').code }));
    `);
    assert.deepEqual(JSON.parse(run(process.execPath, ['require.cjs'], project)), { state: 'closed', sub: 'subscribing', ceiling: 4000, limit: 32768, error: 'timeout' });

    const strict = { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', skipLibCheck: false };
    writeFileSync(join(project, 'node.ts'), NODE_CONSUMER);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...strict, lib: ['ES2022'], types: ['node'] }, files: ['node.ts'] }));
    writeFileSync(join(project, 'browser.ts'), BROWSER_CONSUMER);
    writeFileSync(join(project, 'tsconfig.browser.json'), JSON.stringify({ compilerOptions: { ...strict, lib: ['ES2022', 'DOM'], types: [] }, files: ['browser.ts'] }));
    const tsc = join(PACKAGE, 'node_modules/typescript/bin/tsc');
    for (const config of ['tsconfig.json', 'tsconfig.browser.json']) {
      try {
        run(process.execPath, [tsc, '-p', config], project);
      } catch (error) {
        assert.fail(`tsc --noEmit -p ${config} failed:\n${error.stdout}${error.stderr}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
