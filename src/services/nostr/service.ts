/**
 * The files of `/nostr` in an agent's namespace, and `/runtime/nostr` for the server:
 *
 *   status           view: enabled, receiving, pubkey/npub, each relay's connection status, inbound counts, outgoing counts
 *   relays/<name>    view per relay of the agent: its connection's state (`ws:127.0.0.1:7000`, `wss:relay.example.com`)
 *   policy           view, writable (admin-write where mounted): {senders, per_minute}
 *   dm               call: {to, text, scheme?, reply_to?} -> the outgoing record after the first try
 *   publish          call: {kind, tags?, content?, created_at?} -> the outgoing record after the first try
 *   outgoing/<id>.json   view per DM or event sent (from the outbox or the call files), newest 1000 kept
 */
import type { Cx } from '../../fs/types.js';
import { SyntheticFs, call, completeJsonObject, dir, jsonView, parseJson } from '../../fs/synthetic.js';
import { jsonText } from '../../fs/bytes.js';
import type { NostrEngine } from './engine.js';

const JSON_SUFFIX = '.json';

/** A relay URL as a file name: `ws://host:port/path` -> `ws:host:port%2Fpath` (`ws://host:port/` -> `ws:host:port`). */
export function relayFileName(url: string): string {
  return url
    .replace(/^(wss?):\/\//, '$1:')
    .replace(/\/$/, '')
    .replace(/%/g, '%25')
    .replace(/\//g, '%2F');
}

export function nostrAgentService(engine: NostrEngine, agentId: string): SyntheticFs {
  const relayFiles = () => new Map(engine.relaysOf(agentId).map((url) => [relayFileName(url), url]));
  return new SyntheticFs(
    dir({
      status: jsonView(() => engine.agentStatus(agentId)),
      relays: {
        kind: 'dir',
        dynamic: {
          list: () => [...relayFiles().keys()],
          get: (name) => {
            const url = relayFiles().get(name);
            if (!url) return undefined;
            return jsonView(() => {
              const state = engine.relayStates(agentId).find((s) => s.url === url);
              return state ? { ...state, shared: state.pubkey === null } : { url, status: 'idle', note: 'this agent does not receive on this relay now (nostr not enabled, or no identity)' };
            });
          },
        },
      },
      policy: jsonView(() => engine.policy(agentId), {
        write: (data) => engine.setPolicy(agentId, parseJson(data, '/policy'), '/policy'),
        version: () => engine.settings.entry(agentId).version,
        mtime: () => engine.settings.entry(agentId).updatedAt || Date.now(),
      }),
      dm: call(async (request) => jsonText(await engine.sendDm(agentId, parseJson(request, '/dm'), '/dm')), { complete: completeJsonObject }),
      publish: call(async (request) => jsonText(await engine.publish(agentId, parseJson(request, '/publish'), '/publish')), { complete: completeJsonObject }),
      outgoing: {
        kind: 'dir',
        dynamic: {
          list: () => engine.outgoing.ids(agentId).map((id) => id + JSON_SUFFIX),
          get: (name) => {
            if (!name.endsWith(JSON_SUFFIX)) return undefined;
            const id = name.slice(0, -JSON_SUFFIX.length);
            const first = engine.outgoing.record(agentId, id);
            if (!first) return undefined;
            return jsonView(() => engine.outgoing.record(agentId, id) ?? first, {
              version: () => (engine.outgoing.record(agentId, id)?.attempts ?? 0) + 1,
              mtime: () => engine.outgoing.record(agentId, id)?.updated_at ?? first.updated_at,
            });
          },
        },
      },
    }),
    'nostr',
  );
}

/** `/runtime/nostr`: relays, connections and counts of the whole server. */
export function nostrServerService(engine: NostrEngine): SyntheticFs {
  return new SyntheticFs(jsonView((_cx: Cx) => engine.serverStatus()), 'nostr');
}
