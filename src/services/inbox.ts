/**
 * The inbox, as three mounts side by side:
 * - `/inbox`: message file; each write (on close) enqueues one envelope, durably; reading gives the queued
 *   envelopes as a JSON array, oldest first;
 * - `/inbox.d/<id>.json`: one queued envelope; `rm` discards it;
 * - `/inbox.policy`: `{max_depth, overflow, deadletter_max}`, admin-writable.
 */
import { FsError } from '../fs/errors.js';
import { SyntheticFs, dir, jsonView, message, parseJson, view } from '../fs/synthetic.js';
import type { Cx, Receipt, Stat, WriteFileOptions } from '../fs/types.js';
import { DEFAULT_MESSAGE_CAP } from '../fs/handles.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { envelopeFromWrite } from '../runtime/envelope.js';
import type { EnqueueOutcome } from '../runtime/queues.js';

/**
 * What a write to an inbox answers (HTTP: the body of its 201): the envelope's id, so that a reply can
 * be matched to it, and what became of it: `queued`, `duplicate` (an envelope of that id is already
 * queued: nothing new), `deadlettered` (the inbox was full and its policy says so); `dropped` names the
 * envelope a full drop-oldest inbox let go. Every way into an inbox answers through this one function.
 */
export function inboxReceipt(outcome: EnqueueOutcome): Receipt {
  const value: Record<string, unknown> = { envelope_id: outcome.id, status: outcome.status };
  if (outcome.dropped !== undefined) value['dropped'] = outcome.dropped;
  return { value, created: outcome.status !== 'duplicate' };
}

function queuedJson(rt: AgentRuntime, id: string): string {
  // The stored bodies are envelopes as JSON already: join them instead of parsing and printing each.
  const rows = rt.store.inboxHead(id, 1_000_000);
  if (rows.length === 0) return '[]\n';
  return '[\n' + rows.map((r) => '  ' + r.body).join(',\n') + '\n]\n';
}

const MAX_ENVELOPE_BYTES = DEFAULT_MESSAGE_CAP;

/** `/inbox`: the message file. Whole writes (HTTP, writeAll) go straight to the queue, without a handle. */
export class InboxFs extends SyntheticFs {
  constructor(
    private readonly rt: AgentRuntime,
    private readonly id: string,
  ) {
    super(
      message(
        async (data, cx) => {
          const outcome = await rt.queues.enqueue(id, envelopeFromWrite(data, cx.principal, '/'), '/');
          cx.receipt?.(inboxReceipt(outcome));
        },
        {
          // bash's builtin echo ignores errors of close(2): refuse at open what the enqueue would refuse.
          admit: () => rt.queues.admit(id, '/'),
          read: () => queuedJson(rt, id),
          version: () => rt.store.inboxMeta(id)?.inbox_version ?? 0,
          mtime: () => rt.store.inboxMeta(id)?.inbox_mtime || Date.now(),
          maxBytes: MAX_ENVELOPE_BYTES,
        },
      ),
      'inbox',
    );
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    if (path !== '/') throw new FsError('ENOTDIR', path, 'not a directory');
    if (data.length > MAX_ENVELOPE_BYTES) throw new FsError('EFBIG', path, `message larger than ${MAX_ENVELOPE_BYTES} bytes`);
    if (opts.ifVersion !== undefined) {
      const current = this.rt.store.inboxMeta(this.id)?.inbox_version ?? 0;
      if (current !== opts.ifVersion) throw new FsError('ESTALE', path, `version is ${current}, not ${opts.ifVersion}`);
    }
    const now = Date.now();
    let version: number | undefined;
    // An empty write sends nothing, as with the message file's handle.
    if (data.length > 0) {
      const outcome = await this.rt.queues.enqueue(this.id, envelopeFromWrite(data, cx.principal, path, now), path);
      cx.receipt?.(inboxReceipt(outcome));
      version = outcome.version;
    }
    version ??= this.rt.store.inboxMeta(this.id)?.inbox_version ?? 0;
    return { type: 'file', kind: 'message', size: 0, mode: 0o644, mtime: now, ctime: now, version };
  }
}

export function inboxService(rt: AgentRuntime, id: string): SyntheticFs {
  return new InboxFs(rt, id);
}

const JSON_SUFFIX = '.json';

function envIdOf(name: string): string | undefined {
  return name.endsWith(JSON_SUFFIX) ? name.slice(0, -JSON_SUFFIX.length) : undefined;
}

/** `/inbox.d`: the queued envelopes one file each; removing one discards it. */
export class InboxDirFs extends SyntheticFs {
  constructor(
    private readonly rt: AgentRuntime,
    private readonly id: string,
  ) {
    super(
      dir(
        {},
        {
          dynamic: {
            list: () => rt.store.inboxHead(id, 1_000_000).map((r) => r.env_id + JSON_SUFFIX),
            get: (name) => {
              const envId = envIdOf(name);
              const row = envId === undefined ? undefined : rt.store.inboxOne(id, envId);
              if (!row) return undefined;
              return view(() => JSON.stringify(JSON.parse(row.body), null, 2) + '\n', { mtime: () => row.created_at, version: () => row.attempts + 1 });
            },
          },
        },
      ),
      'inbox',
    );
  }

  async remove(path: string, _cx: Cx, opts: { dir?: boolean } = {}): Promise<void> {
    const name = path.slice(1);
    if (path === '/' || name.includes('/')) throw new FsError('EBUSY', path, 'cannot remove this');
    if (opts.dir) throw new FsError('ENOTDIR', path, 'not a directory');
    const envId = envIdOf(name);
    if (envId === undefined) throw new FsError('ENOENT', path, 'no such envelope');
    this.rt.queues.discard(this.id, envId, path);
  }
}

export function inboxPolicyService(rt: AgentRuntime, id: string): SyntheticFs {
  return new SyntheticFs(
    jsonView(() => rt.queues.policy(id, '/'), {
      write: (data) => {
        const value = parseJson(data, '/');
        // A partial policy keeps the fields it does not name.
        const merged = value && typeof value === 'object' && !Array.isArray(value) ? { ...rt.queues.policy(id, '/'), ...value } : value;
        rt.agents.setInboxPolicy(id, merged, '/');
      },
      mtime: () => rt.store.getAgent(id)?.updated_at ?? Date.now(),
    }),
    'inbox',
  );
}
