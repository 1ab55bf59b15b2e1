import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { Client, ME, ME_LID, NOW_S, startBridge, waMessage } from './helpers/fakes.js';

let ctx;
let client;
beforeEach(async () => {
  ctx = await startBridge();
  ctx.sockets[0].open();
  client = await Client.connect(ctx.url);
  await client.next((f) => f.type === 'status' && f.state === 'open');
});
afterEach(() => ctx.bridge.stop());

const messages = () => client.frames.filter((f) => f.type === 'message');

test('a DM is forwarded with every protocol field', async () => {
  ctx.sockets[0].receive([waMessage({ id: 'ABC', text: 'hi crew', timestamp: NOW_S + 1 })]);
  const frame = await client.next((f) => f.type === 'message');
  assert.deepEqual(frame, {
    type: 'message',
    id: 'ABC',
    chatId: '15552223333@s.whatsapp.net',
    sender: '15552223333@s.whatsapp.net',
    senderAlt: null,
    pushName: 'Ann',
    text: 'hi crew',
    timestamp: NOW_S + 1,
    isGroup: false,
    mentionedMe: false,
    replyToMe: false,
  });
});

test('a group message names its participant and sees mentions of our PN or LID, any device', async () => {
  const group = '120363000000000001@g.us';
  ctx.sockets[0].receive([
    waMessage({ id: 'G1', chat: group, participant: '15554445555@s.whatsapp.net', text: '@bot hi',
      contextInfo: { mentionedJid: ['15550001111@s.whatsapp.net'] } }),
    waMessage({ id: 'G2', chat: group, participant: '15554445555@s.whatsapp.net', text: '@bot hi',
      contextInfo: { mentionedJid: ['99887766554433@lid'] } }),
    waMessage({ id: 'G3', chat: group, participant: '15554445555@s.whatsapp.net', text: '@sam hi',
      contextInfo: { mentionedJid: ['15559999999@s.whatsapp.net'] } }),
  ]);
  await client.next((f) => f.id === 'G3');
  const [g1, g2, g3] = messages();
  assert.equal(g1.isGroup, true);
  assert.equal(g1.chatId, group);
  assert.equal(g1.sender, '15554445555@s.whatsapp.net');
  assert.deepEqual([g1.mentionedMe, g2.mentionedMe, g3.mentionedMe], [true, true, false]);
  assert.ok(ME.includes(':7@') && ME_LID.includes(':7@'), 'our own JIDs carry a device suffix');
});

test('replyToMe comes from the quoted message author (contextInfo.participant)', async () => {
  ctx.sockets[0].receive([
    waMessage({ id: 'R1', text: 'yes', contextInfo: { stanzaId: 'SENT1', participant: '15550001111@s.whatsapp.net' } }),
    waMessage({ id: 'R2', text: 'no', contextInfo: { stanzaId: 'X', participant: '15557777777@s.whatsapp.net' } }),
  ]);
  await client.next((f) => f.id === 'R2');
  assert.deepEqual(messages().map((m) => [m.id, m.replyToMe, m.mentionedMe]), [['R1', true, false], ['R2', false, false]]);
});

test('old, own, status-broadcast, textless and repeated messages are skipped', async () => {
  ctx.sockets[0].receive([
    waMessage({ id: 'OLD', timestamp: NOW_S - 1 }),
    waMessage({ id: 'NOTS', timestamp: null }),
    waMessage({ id: 'MINE', fromMe: true }),
    waMessage({ id: 'STATUS', chat: 'status@broadcast', participant: '15552223333@s.whatsapp.net' }),
    waMessage({ id: 'STICKER', message: { stickerMessage: { mimetype: 'image/webp' } } }),
    waMessage({ id: 'BLANK', text: '   ' }),
    waMessage({ id: 'NEW', timestamp: NOW_S }),
  ], 'append');
  ctx.sockets[0].receive([waMessage({ id: 'NEW', timestamp: NOW_S })]); // redelivery after a reconnect
  ctx.sockets[0].receive([waMessage({ id: 'LAST' })]);
  await client.next((f) => f.id === 'LAST');
  assert.deepEqual(messages().map((m) => m.id), ['NEW', 'LAST']);
});

test('captions and ephemeral/view-once wrappers are unwrapped; Long timestamps are read', async () => {
  const long = { toNumber: () => NOW_S + 9 };
  ctx.sockets[0].receive([
    waMessage({ id: 'IMG', message: { imageMessage: { caption: 'look', contextInfo: { mentionedJid: [ME] } } } }),
    waMessage({ id: 'EPH', timestamp: long, message: { ephemeralMessage: { message: { extendedTextMessage: { text: 'poof' } } } } }),
  ]);
  await client.next((f) => f.id === 'EPH');
  const [img, eph] = messages();
  assert.deepEqual([img.text, img.mentionedMe], ['look', true]);
  assert.deepEqual([eph.text, eph.timestamp], ['poof', NOW_S + 9]);
});

test('LID-addressed chats carry the phone-number JID in senderAlt', async () => {
  const msg = waMessage({ id: 'LID1', chat: '12345678901234@lid' });
  msg.key.remoteJidAlt = '15552223333@s.whatsapp.net';
  ctx.sockets[0].receive([msg]);
  const frame = await client.next((f) => f.id === 'LID1');
  assert.deepEqual([frame.chatId, frame.sender, frame.senderAlt], ['12345678901234@lid', '12345678901234@lid', '15552223333@s.whatsapp.net']);
});

test('messages arriving while no client is connected are queued and delivered after auth', async () => {
  await client.close();
  ctx.sockets[0].receive([waMessage({ id: 'Q1' }), waMessage({ id: 'Q2' })]);
  client = await Client.connect(ctx.url);
  await client.next((f) => f.id === 'Q2');
  assert.deepEqual(client.frames.map((f) => f.type), ['status', 'message', 'message']);
  assert.deepEqual(messages().map((m) => m.id), ['Q1', 'Q2']);
});
