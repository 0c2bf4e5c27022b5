/**
 * A real Nostr relay for tests, run as its own process: `node nostr-relay-process.mjs '<json options>'`.
 * It is @nostr-relay/core (NIP-01 filters, signature checks) on an SQLite file, so a relay killed with
 * SIGKILL and started again on the same file and port still has every event it acknowledged.
 *
 * Options (JSON, all optional):
 *   port           TCP port on 127.0.0.1 (0: a free one)
 *   db             SQLite file for the events (':memory:' when absent)
 *   auth           true: demand NIP-42 AUTH before any REQ or EVENT (core only guards kind-4 reads; the
 *                  stricter rule, answering `auth-required:` to everything else, is added here)
 *   acceptForged   true: a hostile relay that stores and serves events without checking id or signature,
 *                  so a test can show that the client side drops what a lying relay sends
 *
 * Once listening it prints one JSON line on stdout: {"url": "ws://127.0.0.1:<port>", "port": <port>}.
 */
import core from '@nostr-relay/core';
import common from '@nostr-relay/common';
import sqlite from '@nostr-relay/event-repository-sqlite';
import validatorPkg from '@nostr-relay/validator';
import { WebSocketServer } from 'ws';

const options = JSON.parse(process.argv[2] ?? '{}');
const HOST = '127.0.0.1';

const repository = new sqlite.EventRepositorySqlite(options.db ?? ':memory:');
await repository.init(); // runs the repository's migrations; without it the first REQ fails
const relay = new core.NostrRelay(repository, {
  ...(options.auth ? { hostname: HOST } : {}),
  logLevel: common.LogLevel.ERROR,
  // A test relay answers every query from the database, as a restarted one must.
  filterResultCacheTtl: 0,
  eventHandlingResultCacheTtl: 0,
});
const validator = new validatorPkg.Validator();

const send = (ws, message) => {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
};

/** The hostile mode: keep and broadcast whatever arrives, as a relay that lies would. */
async function acceptWithoutChecks(ws, event) {
  await repository.upsert(event);
  await relay.broadcast(event);
  send(ws, common.createOutgoingOkMessage(event.id, true, ''));
}

async function handle(ws, data) {
  let message;
  try {
    message = await validator.validateIncomingMessage(data);
  } catch (err) {
    send(ws, common.createOutgoingNoticeMessage(err.message));
    return;
  }
  const [type] = message;
  if (options.auth && (type === 'REQ' || type === 'EVENT') && !relay.isAuthorized(ws)) {
    if (type === 'REQ') send(ws, common.createOutgoingClosedMessage(message[1], 'auth-required: authenticate first (NIP-42)'));
    else send(ws, common.createOutgoingOkMessage(message[1].id, false, 'auth-required: authenticate first (NIP-42)'));
    return;
  }
  if (options.acceptForged && type === 'EVENT') {
    await acceptWithoutChecks(ws, message[1]);
    return;
  }
  await relay.handleMessage(ws, message);
}

const wss = new WebSocketServer({ host: HOST, port: options.port ?? 0 });
wss.on('connection', (ws) => {
  relay.handleConnection(ws);
  ws.on('message', (data) => {
    handle(ws, data).catch((err) => send(ws, common.createOutgoingNoticeMessage(`error: ${err.message}`)));
  });
  ws.on('error', () => ws.terminate());
  ws.on('close', () => relay.handleDisconnect(ws));
});
wss.on('error', (err) => {
  process.stderr.write(`relay: ${err.message}\n`);
  process.exit(1);
});
wss.on('listening', () => {
  const { port } = wss.address();
  process.stdout.write(JSON.stringify({ url: `ws://${HOST}:${port}`, port }) + '\n');
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => repository.destroy().finally(() => process.exit(0)));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
