// Starts the real local stack for the browser test: a moto server (unless SUMU_MOTO_ENDPOINT
// names one) and the sumu-local binary on a free port, and waits until it serves the demo page.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
// Screenshots and logs go outside the work tree (a test run leaves it clean); SUMU_BROWSER_ARTIFACTS
// names another place.
export const ARTIFACTS = process.env.SUMU_BROWSER_ARTIFACTS || join(tmpdir(), 'sumu-browser-artifacts');

/**
 * The demo's channel namespaces, as scripts/dev sets them: rooms keep their last 100 messages for
 * an hour, and track their members (join/leave frames, the presence question with `channel`).
 */
export const ROOM_NAMESPACES = '[{"pattern":"room/*","history_size":100,"history_ttl_seconds":3600,"join_leave":true}]';

/** Assumed sumu-local command line (see docs/demo.md); SUMU_LOCAL_ARGS replaces it. */
export const DEFAULT_ARGS = '--port {port} --aws-endpoint {moto} --stage {stage} --prefix {prefix} --demo';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A child process whose output goes to a log file, with the last lines kept for errors. */
function startLogged(name, command, args, env) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const logPath = join(ARTIFACTS, `${name}.log`);
  const log = createWriteStream(logPath);
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = [];
  const keep = (chunk) => {
    log.write(chunk);
    tail.push(...String(chunk).split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 30));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (error) => keep(`failed to start ${command}: ${error.message}\n`));
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    child, logPath, exited,
    tail: () => tail.join('\n'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited, pause(10_000).then(() => null)]);
      if (!stopped) child.kill('SIGKILL');
      log.end();
    },
  };
}

async function startMoto() {
  const server = join(REPO, '.venv/bin/moto_server');
  if (!existsSync(server)) {
    throw new Error(`SUMU_MOTO_ENDPOINT is not set and ${server} does not exist: run scripts/test, or start moto and set SUMU_MOTO_ENDPOINT`);
  }
  const port = await freePort();
  const moto = startLogged('moto', server, ['-H', '127.0.0.1', '-p', String(port)], { MOTO_IAM_LOAD_MANAGED_POLICIES: 'true' });
  const deadline = Date.now() + 60_000;
  while (!(await portAccepts(port))) {
    if (Date.now() > deadline || moto.child.exitCode !== null) {
      await moto.stop();
      throw new Error(`moto_server did not listen on 127.0.0.1:${port}:\n${moto.tail()}`);
    }
    await pause(100);
  }
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => moto.stop() };
}

/**
 * Starts moto (if needed) and sumu-local; resolves when `GET /demo/` answers 200.
 * Returns {baseUrl, stage, stop()}.
 */
export async function startStack({ stage = process.env.SUMU_STAGE || 'local', timeoutMs = 90_000 } = {}) {
  rmSync(ARTIFACTS, { recursive: true, force: true }); // no stale screenshots from an earlier run
  const binary = process.env.SUMU_LOCAL_BIN || join(REPO, 'target/debug/sumu-local');
  if (!existsSync(binary)) {
    throw new Error(`sumu-local binary not found at ${binary}: build it (cargo build --workspace --bins) or set SUMU_LOCAL_BIN`);
  }
  const moto = process.env.SUMU_MOTO_ENDPOINT
    ? { endpoint: process.env.SUMU_MOTO_ENDPOINT, stop: async () => {} }
    : await startMoto();
  const port = await freePort();
  // Fresh table, topics and queues per run: a shared moto server may hold an earlier run's items.
  const prefix = `sumu-browser-${process.pid}-${Date.now().toString(36)}`;
  const template = process.env.SUMU_LOCAL_ARGS || DEFAULT_ARGS;
  const args = template.split(/\s+/).filter(Boolean).map((arg) => arg
    .replaceAll('{port}', String(port)).replaceAll('{moto}', moto.endpoint).replaceAll('{stage}', stage)
    .replaceAll('{prefix}', prefix));
  const sumuLocal = startLogged('sumu-local', binary, args, {
    SUMU_MOTO_ENDPOINT: moto.endpoint,
    SUMU_AWS_ENDPOINT: moto.endpoint,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    RUST_LOG: process.env.RUST_LOG || 'info',
    // Rooms keep history and track members, as scripts/dev runs the demo (docs/demo.md);
    // SUMU_CHANNEL_NAMESPACES in the environment replaces it.
    SUMU_CHANNEL_NAMESPACES: process.env.SUMU_CHANNEL_NAMESPACES || ROOM_NAMESPACES,
  });
  let front = null;
  const stop = async () => { await front?.close(); await sumuLocal.stop(); await moto.stop(); };
  let baseUrl = `http://127.0.0.1:${port}`;
  const command = `${binary} ${args.join(' ')}`;
  const deadline = Date.now() + timeoutMs;
  let lastAnswer = 'no answer yet';
  for (;;) {
    if (sumuLocal.child.exitCode !== null || sumuLocal.child.signalCode !== null) {
      await stop();
      throw new Error(`sumu-local exited (${sumuLocal.child.exitCode ?? sumuLocal.child.signalCode}) before serving the demo page.\n` +
        `command: ${command}\n(set SUMU_LOCAL_ARGS if its flags differ; placeholders {port} {moto} {stage} {prefix})\n` +
        `last output (${sumuLocal.logPath}):\n${sumuLocal.tail()}`);
    }
    try {
      const response = await fetch(`${baseUrl}/demo/`);
      if (response.ok) break;
      lastAnswer = `HTTP ${response.status}`;
    } catch (error) {
      lastAnswer = error.cause?.code || error.message;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`sumu-local does not serve the demo page at ${baseUrl}/demo/ after ${timeoutMs / 1000} s ` +
        `(last answer: ${lastAnswer}): is local/sumu-local/demo/ wired in?\ncommand: ${command}\n` +
        `last output (${sumuLocal.logPath}):\n${sumuLocal.tail()}`);
    }
    await pause(200);
  }
  const token = await fetch(`${baseUrl}/dev/token?sub=probe`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!token?.token) {
    await stop();
    throw new Error(`sumu-local serves /demo/ but GET ${baseUrl}/dev/token?sub=probe does not answer {"token":…}: the dev token endpoint is not wired in`);
  }
  if (process.env.SUMU_DEMO_DIR) {
    front = await demoFront(process.env.SUMU_DEMO_DIR, port);
    baseUrl = front.url;
  }
  return { baseUrl, stage, stop, logPath: sumuLocal.logPath };
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/**
 * sumu-local serves the demo page compiled into its binary. SUMU_DEMO_DIR=local/sumu-local/demo
 * puts this server in front of it: /demo/ files come from that directory (the page as it is in
 * the work tree, without rebuilding sumu-local), everything else — the token endpoint, the
 * WebSocket upgrades — goes to sumu-local unchanged.
 */
async function demoFront(dir, backendPort) {
  const server = createHttpServer(async (request, response) => {
    const url = new URL(request.url, 'http://localhost');
    if (url.pathname.startsWith('/demo/')) {
      const file = url.pathname === '/demo/' ? 'index.html' : url.pathname.slice('/demo/'.length);
      if (file.includes('/') || file.includes('..')) return response.writeHead(404).end();
      try {
        const body = await readFile(join(dir, file));
        return response.writeHead(200, { 'content-type': TYPES[file.slice(file.lastIndexOf('.'))] || 'application/octet-stream' }).end(body);
      } catch {
        return response.writeHead(404).end();
      }
    }
    const answer = await fetch(`http://127.0.0.1:${backendPort}${request.url}`, { method: request.method });
    response.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') || 'text/plain' });
    return response.end(Buffer.from(await answer.arrayBuffer()));
  });
  server.on('upgrade', (request, socket, head) => {
    const upstream = connect({ host: '127.0.0.1', port: backendPort }, () => {
      const lines = [`${request.method} ${request.url} HTTP/1.1`];
      for (let i = 0; i < request.rawHeaders.length; i += 2) lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections?.(); return new Promise((resolve) => server.close(resolve)); },
  };
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

export function ensureDir(path) {
  mkdirSync(dirname(path), { recursive: true });
  return path;
}
