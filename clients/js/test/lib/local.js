// The real local stack for the client's end-to-end tests: a moto server (unless
// SUMU_MOTO_ENDPOINT names one), sumu-local on a free port (stoppable, killable and restartable on
// the same port, prefix and signing key), development tokens signed here with that key (so a
// test can also mint expired ones), and the SQS calls a back end makes (moto's JSON protocol
// over fetch: no AWS SDK needed).
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const ARTIFACTS = join(REPO, 'clients/js/test/artifacts');
/** Generous: a cold sumu-local + moto on a busy 2-core machine can take seconds per hop. */
export const WAIT_MS = Number(process.env.SUMU_CLIENT_WAIT_MS) || 60_000;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

/** A child process logging to ARTIFACTS/<name>.log, killed when the test process exits. */
function startLogged(name, command, args, env) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const logPath = join(ARTIFACTS, `${name}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
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
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child, logPath, running,
    tail: () => tail.join('\n'),
    async stop(signal = 'SIGINT') {
      if (running()) {
        child.kill(signal);
        const stopped = await Promise.race([exited, pause(10_000).then(() => null)]);
        if (!stopped) child.kill('SIGKILL');
        await exited;
      }
      process.removeListener('exit', killOnExit);
      log.end();
    },
  };
}

export async function startMoto() {
  if (process.env.SUMU_MOTO_ENDPOINT) return { endpoint: process.env.SUMU_MOTO_ENDPOINT, stop: async () => {} };
  const server = join(REPO, '.venv/bin/moto_server');
  if (!existsSync(server)) {
    throw new Error(`SUMU_MOTO_ENDPOINT is not set and ${server} does not exist: run scripts/test, or start moto and set SUMU_MOTO_ENDPOINT`);
  }
  const port = await freePort();
  const moto = startLogged('moto', server, ['-H', '127.0.0.1', '-p', String(port)], { MOTO_IAM_LOAD_MANAGED_POLICIES: 'true' });
  const deadline = Date.now() + WAIT_MS;
  while (!(await portAccepts(port))) {
    if (Date.now() > deadline || !moto.running()) {
      await moto.stop();
      throw new Error(`moto_server did not listen on 127.0.0.1:${port}:\n${moto.tail()}`);
    }
    await pause(100);
  }
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => moto.stop() };
}

/** A development signing key of our own: sumu-local loads it (--key-file) and we sign with it. */
export function devKey() {
  const dir = mkdtempSync(join(tmpdir(), 'sumu-client-key-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = join(dir, 'dev-signing-key.p8');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'der' }), { mode: 0o600 });
  // sumu-local's key id: "dev-" + the first 12 characters of the base64url x coordinate.
  const kid = `dev-${publicKey.export({ format: 'jwk' }).x.slice(0, 12)}`;
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return {
    file,
    /** A token like `sumu-local token --sub <sub>`, valid from `fromSeconds` for `ttlSeconds`. */
    mint(sub, { ttlSeconds = 3600, fromSeconds = Math.floor(Date.now() / 1000), claims = {} } = {}) {
      const header = b64({ alg: 'ES256', typ: 'JWT', kid });
      const payload = b64({
        iss: 'sumu-local', aud: 'sumu-local', sub,
        iat: fromSeconds, nbf: fromSeconds, exp: fromSeconds + ttlSeconds, ...claims,
      });
      const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
      return `${header}.${payload}.${signature.toString('base64url')}`;
    },
  };
}

/**
 * The channel namespaces the tests' sumu-local keeps history for: `room/*` (100 publications,
 * an hour) and `small/*` (5, for outages longer than the window). `t/*` keeps none.
 */
export const NAMESPACES = [
  { pattern: 'room/*', history_size: 100, history_ttl_seconds: 3600 },
  { pattern: 'small/*', history_size: 5, history_ttl_seconds: 3600 },
];

/**
 * sumu-local on its own port, prefix and key; `start()` (again after `stop()`/`kill()`) serves
 * the same API on the same port, over the same table and queues (history included).
 */
export async function sumuLocal({ moto, key, args = [], name = 'sumu-local', namespaces = NAMESPACES }) {
  const binary = process.env.SUMU_LOCAL_BIN || join(REPO, 'target/debug/sumu-local');
  if (!existsSync(binary)) {
    throw new Error(`sumu-local binary not found at ${binary}: build it (cargo build -p sumu-local --bin sumu-local) or set SUMU_LOCAL_BIN`);
  }
  const port = await freePort();
  const stage = 'local';
  const prefix = `sumu-client-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const base = `http://127.0.0.1:${port}`;
  const commandLine = ['--port', String(port), '--aws-endpoint', moto.endpoint, '--stage', stage,
    '--prefix', prefix, '--key-file', key.file, '--channel-namespaces', JSON.stringify(namespaces), ...args];
  let process_ = null;
  const env = {
    AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1',
    RUST_LOG: process.env.RUST_LOG || 'sumu_local=info',
  };
  const stack = {
    url: `ws://127.0.0.1:${port}/${stage}`,
    prefix,
    running: () => process_?.running() ?? false,
    async start() {
      process_ = startLogged(name, binary, commandLine, env);
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        if (!process_.running()) {
          throw new Error(`sumu-local exited before serving.\ncommand: ${binary} ${commandLine.join(' ')}\n${process_.tail()}`);
        }
        const ok = await fetch(`${base}/.well-known/jwks.json`).then((r) => r.ok, () => false);
        if (ok) return;
        if (Date.now() > deadline) {
          await process_.stop('SIGKILL');
          throw new Error(`sumu-local did not serve ${base} within ${WAIT_MS} ms:\n${process_.tail()}`);
        }
        await pause(100);
      }
    },
    /** Graceful stop (Ctrl-C). */
    stop: async () => process_?.stop('SIGINT'),
    /** A crash: no close frames, no $disconnect. */
    kill: async () => process_?.stop('SIGKILL'),
    /** Sends a notification request to the notifications queue, as a back end does. */
    async notify(request) {
      const queueUrl = await sqs(moto.endpoint, 'GetQueueUrl', { QueueName: `${prefix}-notifications` }).then((r) => r.QueueUrl);
      await sqs(moto.endpoint, 'SendMessage', { QueueUrl: queueUrl, MessageBody: JSON.stringify(request) });
    },
    /** Receives (and deletes) what is on the messages queue: what `send`/`publish` delivered. */
    async receiveMessages() {
      const queueUrl = await sqs(moto.endpoint, 'GetQueueUrl', { QueueName: `${prefix}-messages` }).then((r) => r.QueueUrl);
      const answer = await sqs(moto.endpoint, 'ReceiveMessage', {
        QueueUrl: queueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'], WaitTimeSeconds: 1,
      });
      const messages = answer.Messages ?? [];
      for (const message of messages) {
        await sqs(moto.endpoint, 'DeleteMessage', { QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle });
      }
      return messages.map((message) => ({
        body: JSON.parse(message.Body),
        attributes: Object.fromEntries(Object.entries(message.MessageAttributes ?? {})
          .map(([key, value]) => [key, value.StringValue])),
      }));
    },
  };
  await stack.start();
  return stack;
}

/** One SQS call in the JSON protocol; moto checks no signature, only the credential scope. */
export async function sqs(endpoint, action, body) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `AmazonSQS.${action}`,
      authorization: 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`SQS ${action} answered HTTP ${response.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

/** Polls `condition` until it returns a truthy value (returned), or fails after `timeout` ms. */
export async function until(condition, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await pause(25);
  }
}
