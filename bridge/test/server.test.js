import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { createBridge } from '../src/bridge.js';
import { CLOSE_AUTH_REQUIRED, CLOSE_BAD_TOKEN, CLOSE_REPLACED, tokenMatches } from '../src/server.js';
import { Client, memoryAuth, startBridge, TOKEN, until } from './helpers/fakes.js';

const started = await startBridge();
const { bridge, url } = started;
after(() => bridge.stop());

test('listens on 127.0.0.1 only', () => {
  assert.equal(bridge.address.address, '127.0.0.1');
  for (const host of ['0.0.0.0', '::', 'localhost', '192.168.1.2']) {
    assert.throws(
      () => createBridge({ ...memoryAuth(), makeSocket() {}, authDir: '/nonexistent', token: TOKEN, host }),
      /only binds 127\.0\.0\.1/,
    );
  }
});

test('an empty token is refused at construction', () => {
  assert.throws(() => createBridge({ ...memoryAuth(), makeSocket() {}, authDir: '/x', token: '' }), /token is required/);
});

test('a good token gets the current status first', async () => {
  const client = await Client.connect(url);
  const first = await client.next(() => true);
  assert.deepEqual(first.type, 'status');
  assert.equal(first.state, 'connecting');
  await client.close();
});

test('a wrong token is closed with 4003', async () => {
  const before = bridge.authFailures;
  const client = await Client.connect(url, { token: 'wrong' });
  const { code, reason } = await client.closed;
  assert.equal(code, CLOSE_BAD_TOKEN);
  assert.match(reason, /invalid token/);
  assert.equal(client.frames.length, 0, 'nothing is sent before auth');
  assert.equal(bridge.authFailures, before + 1);
});

test('a first frame that is not auth is closed with 4001', async () => {
  for (const first of ['not json', { type: 'send', requestId: 'r', chatId: 'x@s.whatsapp.net', text: 'hi' }, { type: 'auth' }]) {
    const client = await Client.connect(url, { token: null });
    client.send(first);
    const { code } = await client.closed;
    assert.equal(code, first.type === 'auth' ? CLOSE_BAD_TOKEN : CLOSE_AUTH_REQUIRED);
  }
});

test('a client that never authenticates is closed with 4001', async () => {
  const quick = await startBridge({ authTimeoutMs: 50 });
  try {
    const client = await Client.connect(quick.url, { token: null });
    const { code, reason } = await client.closed;
    assert.equal(code, CLOSE_AUTH_REQUIRED);
    assert.match(reason, /timeout/);
  } finally {
    await quick.bridge.stop();
  }
});

test('an upgrade request with an Origin header is refused with 403', async () => {
  const ws = new WebSocket(url, { origin: 'http://127.0.0.1:8000' });
  ws.on('error', () => {}); // aborting the refused handshake below reports an error we expect
  const [, response] = await once(ws, 'unexpected-response');
  assert.equal(response.statusCode, 403);
  ws.terminate();
});

test('plain HTTP gets 426', async () => {
  const status = await new Promise((resolve, reject) => {
    request(url.replace('ws:', 'http:'), (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject).end();
  });
  assert.equal(status, 426);
});

test('a newer authenticated client replaces the older one', async () => {
  const first = await Client.connect(url);
  await first.next((f) => f.type === 'status');
  const second = await Client.connect(url);
  await second.next((f) => f.type === 'status');
  const { code } = await first.closed;
  assert.equal(code, CLOSE_REPLACED);
  await second.close();
});

test('frames after auth that are not JSON objects get an error frame, the connection stays', async () => {
  const client = await Client.connect(url);
  client.send('[1,2]');
  const error = await client.next((f) => f.type === 'error');
  assert.match(error.error, /JSON objects/);
  client.send({ type: 'bogus' });
  await client.next((f) => f.type === 'error' && /unknown frame type/.test(f.error));
  assert.equal(client.ws.readyState, WebSocket.OPEN);
  await client.close();
});

test('stop closes clients with 1001', async () => {
  const other = await startBridge();
  const client = await Client.connect(other.url);
  await client.next((f) => f.type === 'status');
  await other.bridge.stop();
  const { code } = await client.closed;
  assert.equal(code, 1001);
  await until(() => other.sockets[0].ended);
});

test('tokenMatches compares exactly', () => {
  assert.equal(tokenMatches('abc', 'abc'), true);
  assert.equal(tokenMatches('abd', 'abc'), false);
  assert.equal(tokenMatches('abcd', 'abc'), false);
  assert.equal(tokenMatches('', 'abc'), false);
  assert.equal(tokenMatches(undefined, 'abc'), false);
  assert.equal(tokenMatches(123, 'abc'), false);
});
