import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { Client, startBridge, until } from './helpers/fakes.js';

const CHAT = '15552223333@s.whatsapp.net';
let ctx;
let client;
let sock;
beforeEach(async () => {
  ctx = await startBridge();
  sock = ctx.sockets[0];
  sock.open();
  client = await Client.connect(ctx.url);
  await client.next((f) => f.type === 'status' && f.state === 'open');
});
afterEach(() => ctx.bridge.stop());

const ackFor = (requestId) => client.next((f) => f.type === 'ack' && f.requestId === requestId);

test('send is delivered and acked with the WhatsApp message id', async () => {
  client.send({ type: 'send', requestId: 'r1', chatId: CHAT, text: 'Aye!' });
  const ack = await ackFor('r1');
  assert.deepEqual(ack, { type: 'ack', requestId: 'r1', ok: true, messageId: 'SENT1' });
  assert.deepEqual(sock.sent, [{ jid: CHAT, content: { text: 'Aye!' } }]);
});

test('a failing send is acked ok:false with the error', async () => {
  sock.failures.push(new Error('not-authorized'));
  client.send({ type: 'send', requestId: 'r2', chatId: CHAT, text: 'hi' });
  const ack = await ackFor('r2');
  assert.equal(ack.ok, false);
  assert.match(ack.error, /not-authorized/);
  assert.equal(ack.partsSent, 0);
  assert.equal(sock.sent.length, 0);
});

test('a long text is sent in order in parts <= 4000 and acked once, with the last id', async () => {
  const text = Array.from({ length: 30 }, (_, i) => `Line ${i} ${'z'.repeat(400)}`).join('\n');
  client.send({ type: 'send', requestId: 'long', chatId: CHAT, text });
  const ack = await ackFor('long');
  assert.ok(sock.sent.length >= 4);
  assert.ok(sock.sent.every(({ content }) => content.text.length <= 4000));
  assert.equal(sock.sent.map(({ content }) => content.text).join('\n'), text);
  assert.deepEqual(ack, { type: 'ack', requestId: 'long', ok: true, messageId: `SENT${sock.sent.length}` });
  assert.equal(client.frames.filter((f) => f.type === 'ack').length, 1);
});

test('a part failing midway says which part and how many went out', async () => {
  const text = `${'a'.repeat(3000)}\n\n${'b'.repeat(3000)}\n\n${'c'.repeat(3000)}`;
  sock.failures.push(null, new Error('rate-overlimit'));
  client.send({ type: 'send', requestId: 'mid', chatId: CHAT, text });
  const ack = await ackFor('mid');
  assert.equal(ack.ok, false);
  assert.match(ack.error, /rate-overlimit \(part 2\/3\)/);
  assert.equal(ack.partsSent, 1);
});

test('invalid sends are acked ok:false; sends without requestId get an error frame', async () => {
  client.send({ type: 'send', requestId: 'bad1', chatId: CHAT, text: '' });
  client.send({ type: 'send', requestId: 'bad2', chatId: 'nobody', text: 'hi' });
  client.send({ type: 'send', chatId: CHAT, text: 'hi' });
  assert.match((await ackFor('bad1')).error, /non-empty string/);
  assert.match((await ackFor('bad2')).error, /JID/);
  assert.match((await client.next((f) => f.type === 'error')).error, /requestId/);
  assert.equal(sock.sent.length, 0);
});

test('a send while WhatsApp is down is refused, not queued', async () => {
  sock.close(428);
  await client.next((f) => f.type === 'status' && f.state === 'closed');
  client.send({ type: 'send', requestId: 'down', chatId: CHAT, text: 'hi' });
  const ack = await ackFor('down');
  assert.equal(ack.ok, false);
  assert.match(ack.error, /not connected/);
});

test('a repeated requestId is delivered once and acked again with the same id', async () => {
  client.send({ type: 'send', requestId: 'dup', chatId: CHAT, text: 'once' });
  client.send({ type: 'send', requestId: 'dup', chatId: CHAT, text: 'once' });
  await until(() => client.frames.filter((f) => f.type === 'ack').length === 2);
  await client.close();
  client = await Client.connect(ctx.url); // e.g. the Python side restarted and retries its outbox
  client.send({ type: 'send', requestId: 'dup', chatId: CHAT, text: 'once' });
  const ack = await ackFor('dup');
  assert.equal(ack.messageId, 'SENT1');
  assert.equal(sock.sent.length, 1);
});

test('a failed requestId can be retried', async () => {
  sock.failures.push(new Error('boom'));
  client.send({ type: 'send', requestId: 'retry', chatId: CHAT, text: 'hi' });
  await ackFor('retry');
  client.frames.length = 0;
  client.send({ type: 'send', requestId: 'retry', chatId: CHAT, text: 'hi' });
  assert.equal((await ackFor('retry')).ok, true);
  assert.equal(sock.sent.length, 1);
});

test('acks for a client that went away are delivered to the next one', async () => {
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const send = sock.sendMessage.bind(sock);
  let called = false;
  sock.sendMessage = async (...args) => { called = true; await gate; return send(...args); };
  client.send({ type: 'send', requestId: 'late', chatId: CHAT, text: 'hi' });
  await until(() => called);
  await client.close();
  release();
  await until(() => sock.sent.length === 1);
  client = await Client.connect(ctx.url);
  assert.equal((await ackFor('late')).ok, true);
});

test('two long replies to one chat never interleave', async () => {
  const a = `${'A'.repeat(3500)}\n\n${'A'.repeat(3500)}`;
  const b = `${'B'.repeat(3500)}\n\n${'B'.repeat(3500)}`;
  client.send({ type: 'send', requestId: 'a', chatId: CHAT, text: a });
  client.send({ type: 'send', requestId: 'b', chatId: CHAT, text: b });
  await ackFor('b');
  assert.deepEqual(sock.sent.map(({ content }) => content.text[0]), ['A', 'A', 'B', 'B']);
});
