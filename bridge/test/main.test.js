// The command line as the gateway runs it: `node src/main.js --port 0 --exit-on-stdin-close` with a stdin pipe.
// The gateway holds the other end of that pipe; when it dies (kill -9 included) the kernel closes it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BRIDGE = dirname(dirname(fileURLToPath(import.meta.url)));

/** Start main.js; resolves once it printed READY (it listens), with the child and its URL. */
async function startMain(args) {
  const authDir = await mkdtemp(join(tmpdir(), 'bridge-main-'));
  const child = spawn(process.execPath, ['src/main.js', '--auth-dir', authDir, '--port', '0', ...args], {
    cwd: BRIDGE,
    env: { ...process.env, NANOFOLKS_BRIDGE_TOKEN: 'main-test-token' },
    stdio: ['pipe', 'pipe', 'ignore'], // Baileys fails to reach WhatsApp here and logs about it on stderr
  });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    if (line.startsWith('READY ')) return { child, exited, url: line.slice(6), authDir };
  }
  const [code] = await exited;
  throw new Error(`main.js exited with ${code} before READY`);
}

test('--exit-on-stdin-close: the end of stdin stops the bridge cleanly (exit code 0)', { timeout: 60_000 }, async () => {
  const { child, exited, url, authDir } = await startMain(['--exit-on-stdin-close']);
  try {
    assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(child.exitCode, null, 'still serving while stdin is open');
    child.stdin.end(); // what the kernel does for a parent that died
    const [code, signal] = await exited;
    assert.deepEqual([code, signal], [0, null]);
  } finally {
    child.kill('SIGKILL');
    await rm(authDir, { recursive: true, force: true });
  }
});
