import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DisconnectReason, useMultiFileAuthState } from '@whiskeysockets/baileys';
import { Client, startBridge, until, waMessage } from './helpers/fakes.js';

const statuses = (client) => client.frames.filter((f) => f.type === 'status').map((f) => f.state);

test('a dropped connection is reconnected with a new socket, with growing delays', async () => {
  const { bridge, sockets, url } = await startBridge();
  try {
    const client = await Client.authed(url);
    sockets[0].open();
    await client.next((f) => f.state === 'open');
    sockets[0].close(DisconnectReason.connectionLost, 'Connection Lost');
    await until(() => sockets.length === 2);
    sockets[1].close(DisconnectReason.connectionClosed);
    await until(() => sockets.length === 3);
    sockets[2].open();
    await until(() => statuses(client).length === 7);
    const closed = client.frames.filter((f) => f.state === 'closed');
    assert.deepEqual(closed.map((f) => [f.statusCode, f.retryInMs]), [[408, 5], [428, 10]]);
    assert.equal(closed[0].reason, 'Connection Lost');
    assert.deepEqual(statuses(client), ['connecting', 'open', 'closed', 'connecting', 'closed', 'connecting', 'open']);

    // A successful open resets the backoff.
    sockets[2].close(DisconnectReason.connectionLost);
    await until(() => sockets.length === 4);
    assert.equal(client.frames.filter((f) => f.state === 'closed').at(-1).retryInMs, 5);
  } finally {
    await bridge.stop();
  }
});

test('restartRequired (after a QR scan) reconnects at once', async () => {
  const { bridge, sockets, url } = await startBridge({ backoff: { baseMs: 60_000, maxMs: 60_000 } });
  try {
    const client = await Client.authed(url);
    sockets[0].close(DisconnectReason.restartRequired);
    await until(() => sockets.length === 2);
    assert.equal((await client.next((f) => f.state === 'closed')).retryInMs, 0);
  } finally {
    await bridge.stop();
  }
});

test('loggedOut is reported once and never retried', async () => {
  const { bridge, sockets, url } = await startBridge();
  try {
    const client = await Client.authed(url);
    sockets[0].open();
    sockets[0].close(DisconnectReason.loggedOut, 'Intentional Logout');
    const frame = await client.next((f) => f.state === 'loggedOut');
    assert.deepEqual(frame, { type: 'status', state: 'loggedOut', statusCode: 401, reason: 'Intentional Logout' });
    // Ten times the largest backoff: a retry would have made a new socket by now.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(sockets.length, 1);
    assert.deepEqual(statuses(client), ['connecting', 'open', 'loggedOut']);

    const later = await Client.connect(url); // a client connecting later learns it at once
    assert.equal((await later.next((f) => f.type === 'status')).state, 'loggedOut');
  } finally {
    await bridge.stop();
  }
});

test('relink after loggedOut drops the dead credentials and connects again', async () => {
  const { bridge, sockets, authDir, auth } = await startBridge();
  try {
    await writeFile(join(authDir, 'creds.json'), '{}');
    await writeFile(join(authDir, 'keep.txt'), 'not ours');
    await assert.rejects(bridge.relink(), /only possible when logged out/);
    sockets[0].close(DisconnectReason.loggedOut);
    await bridge.relink();
    assert.equal(sockets.length, 2);
    assert.equal(auth.calls.loads, 2);
    assert.deepEqual(await readdir(authDir), ['keep.txt']);
  } finally {
    await bridge.stop();
  }
});

test('QR codes go to the live client, to onQr, and to a client connecting later', async () => {
  const seen = [];
  const { bridge, sockets, url } = await startBridge({ onQr: (qr) => seen.push(qr) });
  try {
    const client = await Client.authed(url);
    await client.next((f) => f.type === 'status');
    sockets[0].ev.emit('connection.update', { qr: '2@abc' });
    assert.equal((await client.next((f) => f.type === 'qr')).qr, '2@abc');
    assert.deepEqual(seen, ['2@abc']);
    const later = await Client.connect(url);
    assert.equal((await later.next((f) => f.type === 'qr')).qr, '2@abc');
    sockets[0].open();
    const third = await Client.connect(url);
    await third.next((f) => f.type === 'status' && f.state === 'open');
    assert.equal(third.frames.some((f) => f.type === 'qr'), false, 'once linked the QR is history');
  } finally {
    await bridge.stop();
  }
});

test('events from a socket that was replaced are ignored', async () => {
  const { bridge, sockets, url } = await startBridge();
  try {
    const client = await Client.authed(url);
    sockets[0].close(DisconnectReason.connectionLost);
    await until(() => sockets.length === 2);
    sockets[1].open();
    sockets[0].receive([waMessage({ id: 'GHOST' })]);
    sockets[0].close(DisconnectReason.loggedOut);
    sockets[1].receive([waMessage({ id: 'REAL' })]);
    await client.next((f) => f.id === 'REAL');
    assert.equal(bridge.status.state, 'open');
    assert.equal(client.frames.some((f) => f.id === 'GHOST'), false);
  } finally {
    await bridge.stop();
  }
});

test('a socket that cannot be built is retried', async () => {
  let calls = 0;
  const { bridge } = await startBridge({
    makeSocket: () => {
      calls += 1;
      throw new Error('no network');
    },
  });
  try {
    await until(() => calls >= 3);
    assert.equal(bridge.status.reason, 'no network');
  } finally {
    await bridge.stop();
  }
});

test('creds.update is saved through the real multi-file auth state', async () => {
  const authDir = await mkdtemp(join(tmpdir(), 'wa-auth-'));
  const { bridge, sockets } = await startBridge({ authDir, loadAuthState: useMultiFileAuthState });
  try {
    sockets[0].ev.emit('creds.update', {});
    await until(async () => (await readdir(authDir)).includes('creds.json'));
    const saved = JSON.parse(await readFile(join(authDir, 'creds.json'), 'utf8'));
    assert.ok(saved.noiseKey?.private, 'the real initAuthCreds keys were written');
  } finally {
    await bridge.stop();
  }
});

test('login mode (no token) serves no WebSocket', async () => {
  const { bridge, sockets } = await startBridge({ token: undefined });
  try {
    assert.equal(bridge.port, null);
    assert.equal(sockets.length, 1);
  } finally {
    await bridge.stop();
  }
});
