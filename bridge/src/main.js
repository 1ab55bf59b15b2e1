#!/usr/bin/env node
// Command line: wire the real Baileys socket, the multi-file auth state and a terminal QR into the bridge.
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import makeWASocket, { Browsers, makeCacheableSignalKeyStore, useMultiFileAuthState } from '@whiskeysockets/baileys';
import pino from 'pino';
import qrcode from 'qrcode-terminal';
import { createBridge } from './bridge.js';

const DEFAULT_PORT = 3001;
const USAGE = `usage: node src/main.js [--login] [--auth-dir DIR] [--port N] [--exit-on-stdin-close]

  --login        link this machine as a WhatsApp device: print the QR code here, exit 0 once linked
  --auth-dir     credentials folder (env NANOFOLKS_WHATSAPP_AUTH_DIR, default $NANOFOLKS_HOME/whatsapp)
  --port         WebSocket port on 127.0.0.1 (env NANOFOLKS_BRIDGE_PORT, default ${DEFAULT_PORT}; 0 = any free port)
  --exit-on-stdin-close
                 stop cleanly when stdin reaches its end: a parent that holds the other end of a pipe
                 (the gateway) takes the bridge with it when it dies, even by kill -9

The WebSocket token comes from env NANOFOLKS_BRIDGE_TOKEN (never from argv, which other users can read).
Serving requires it; with --login it is optional. Prints "READY ws://127.0.0.1:PORT" once listening.`;

function fail(message, code = 2) {
  process.stderr.write(`whatsapp-bridge: ${message}\n`);
  process.exit(code);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        login: { type: 'boolean', default: false },
        'auth-dir': { type: 'string' },
        port: { type: 'string' },
        'exit-on-stdin-close': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const home = process.env.NANOFOLKS_HOME || join(homedir(), '.nanofolks');
  const authDir = resolve(parsed['auth-dir'] || process.env.NANOFOLKS_WHATSAPP_AUTH_DIR || join(home, 'whatsapp'));
  const portText = parsed.port ?? process.env.NANOFOLKS_BRIDGE_PORT ?? String(DEFAULT_PORT);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) fail(`invalid port: ${portText}`);
  const token = process.env.NANOFOLKS_BRIDGE_TOKEN || undefined;
  if (!token && !parsed.login) fail('NANOFOLKS_BRIDGE_TOKEN is not set (the shared secret the Python side sends)');
  return { login: parsed.login, authDir, port, token, exitOnStdinClose: parsed['exit-on-stdin-close'] };
}

async function main() {
  const opts = options();
  process.umask(0o077); // credentials and keys are readable by this user only
  await mkdir(opts.authDir, { recursive: true, mode: 0o700 });
  const logger = pino({ level: process.env.NANOFOLKS_BRIDGE_LOG_LEVEL || 'warn' }, pino.destination(2));

  // Track credential writes so --login exits only after the new device's keys are on disk.
  const writes = new Set();
  const loadAuthState = async (dir) => {
    const { state, saveCreds } = await useMultiFileAuthState(dir);
    const track = () => {
      const write = saveCreds().finally(() => writes.delete(write));
      writes.add(write);
      return write;
    };
    return { state, saveCreds: track };
  };

  const makeSocket = ({ auth, logger: log }) =>
    makeWASocket({
      auth: { creds: auth.creds, keys: makeCacheableSignalKeyStore(auth.keys, log) },
      logger: log,
      browser: Browsers.ubuntu('Nanofolks'),
      markOnlineOnConnect: false, // keep the phone getting notifications
      syncFullHistory: false, // old chats are never answered anyway
    });

  let relinked = false;
  let bridge;
  const handleStatus = async (status) => {
    if (status.state === 'loggedOut') {
      if (opts.login && !relinked) {
        relinked = true;
        process.stdout.write('The stored WhatsApp session was logged out: linking again.\n');
        await bridge.relink();
        return;
      }
      logger.error('WhatsApp logged this device out: run `nanofolks channels login whatsapp` to link it again');
      if (opts.login) await shutdown(1);
    }
    if (status.state === 'open' && opts.login) {
      process.stdout.write(`Linked as ${status.me}. Credentials are in ${opts.authDir}\n`);
      await Promise.allSettled([...writes]);
      await shutdown(0);
    }
  };
  const onStatus = (status) => handleStatus(status).catch((err) => fail(err?.stack || String(err), 1));
  const onQr = opts.login
    ? (qr) => {
        process.stdout.write('\nScan this QR code in WhatsApp > Settings > Linked devices > Link a device:\n\n');
        qrcode.generate(qr, { small: true }, (text) => process.stdout.write(`${text}\n`));
      }
    : undefined;

  try {
    bridge = createBridge({ ...opts, makeSocket, loadAuthState, logger, onQr, onStatus });
  } catch (err) {
    fail(err.message);
  }
  let stopping = null;
  const shutdown = (code) => {
    stopping ??= bridge.stop().then(() => process.exit(code));
    return stopping;
  };
  process.once('SIGINT', () => shutdown(0));
  process.once('SIGTERM', () => shutdown(0));
  if (opts.exitOnStdinClose) {
    // Nothing is read from stdin; its end (or a broken pipe) means the parent is gone.
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }

  const { port } = await bridge.start();
  if (port !== null) process.stdout.write(`READY ws://127.0.0.1:${port}\n`);
}

main().catch((err) => fail(err?.stack || String(err), 1));
