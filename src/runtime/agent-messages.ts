/**
 * Messages between agents: who an address names, who may message whom, and the signature every envelope
 * an agent sends carries.
 *
 * The signed part is a NIP-01 event (so a relay can carry the very same event, CONTRACT section 9):
 * kind AGENT_MESSAGE_KIND, `content` the payload as JSON, `pubkey` the sender's identity key, a `p` tag
 * with the recipient's, an `envelope` tag with the envelope id when the sender chose it (otherwise the
 * envelope id is the event id), and an `e` tag (NIP-10 `reply`) with the event an answer replies to.
 * What travels with it unsigned is delivery metadata: `metadata.hops`, `metadata.in_reply_to`.
 */
import { verifyEvent } from 'nostr-tools/pure';
import { FsError } from '../fs/errors.js';
import type { RuntimeStore } from './agent-store/index.js';
import { parseAgent } from './agents.js';
import { agentAddress } from './envelope.js';
import type { KeyStore } from './keys.js';
import { AGENT_ID_RE, type Envelope, type Messaging, type SignedEvent } from './spec.js';

/** The kind of an agent9 agent message: a regular event (1000-9999), one no NIP assigns. */
export const AGENT_MESSAGE_KIND = 4090;

/** Principal names that are never agents: a bare `to: "operator"` is an answer to a person. */
const NOT_AGENTS: ReadonlySet<string> = new Set(['operator', 'admin']);

/** The agent an address names: `agent:<id>`, or a bare agent id; undefined for anything else (`operator`, `user:0`, `nostr:...`). */
export function agentOfAddress(to: string): string | undefined {
  const id = to.startsWith('agent:') ? to.slice('agent:'.length) : to.includes(':') || NOT_AGENTS.has(to) ? undefined : to;
  return id !== undefined && AGENT_ID_RE.test(id) ? id : undefined;
}

function admits(policy: Messaging, other: string): boolean {
  return (policy.allow.includes('*') || policy.allow.includes(other)) && !policy.deny.includes(other);
}

/** The hop count an envelope arrived with (0 for one a person sent). */
export function hopsOf(env: Envelope): number {
  const h = env.metadata?.['hops'];
  return typeof h === 'number' && Number.isInteger(h) && h >= 0 ? h : 0;
}

export class AgentMessages {
  /** The largest hop count among the envelopes of each agent's running tick: what it sends adds one. */
  private readonly tickHops = new Map<string, number>();

  constructor(
    private readonly store: RuntimeStore,
    private readonly keys: KeyStore,
  ) {}

  private messagingOf(id: string): Messaging | undefined {
    const row = this.store.getAgent(id);
    return row && parseAgent(row).messaging;
  }

  /** Whether `sender` may message `receiver`: each one's policy admits the other. */
  mayMessage(sender: string, receiver: string): boolean {
    const s = this.messagingOf(sender);
    const r = this.messagingOf(receiver);
    return !!s && !!r && admits(s, receiver) && admits(r, sender);
  }

  /** Why `sender` may not message `receiver` now (ENOENT, EACCES), or undefined when it may. */
  refusal(sender: string, receiver: string, path: string): FsError | undefined {
    if (!this.store.hasAgent(receiver)) return new FsError('ENOENT', path, `no agent '${receiver}'`);
    if (!this.mayMessage(sender, receiver)) return new FsError('EACCES', path, `agent '${sender}' may not message agent '${receiver}' (messaging policy)`);
    return undefined;
  }

  /** The most hops an envelope to `receiver` may have travelled. */
  maxHops(receiver: string): number | undefined {
    return this.messagingOf(receiver)?.max_hops;
  }

  /** A tick of `agent` runs with envelopes that travelled up to `hops`; undefined: it ended. */
  tickRunning(agent: string, hops: number | undefined): void {
    if (hops === undefined) this.tickHops.delete(agent);
    else this.tickHops.set(agent, hops);
  }

  /** The hop count of what `agent` sends now: one more than what its running tick received. */
  nextHops(agent: string, atLeast = 0): number {
    return Math.max((this.tickHops.get(agent) ?? 0) + 1, atLeast);
  }

  /**
   * The envelope as `sender` sends it to `receiver`: `from: "agent:<sender>"`, `source: "agent"`, and
   * signed. `chosenId`: the id the sender gave (bound by the `envelope` tag); else the event id is the
   * envelope id. `replyTo`: the signed event it answers, if any.
   */
  sign(sender: string, receiver: string, env: Omit<Envelope, 'id' | 'from' | 'source'> & { id?: string }, path: string, replyTo?: SignedEvent): Envelope {
    const recipientKey = this.keys.pubkey(receiver);
    if (recipientKey === undefined) throw new FsError('ENOENT', path, `no agent '${receiver}'`);
    const tags: string[][] = [['p', recipientKey]];
    if (env.id !== undefined) tags.push(['envelope', env.id]);
    if (replyTo) tags.push(['e', replyTo.id, '', 'reply']);
    const signed = this.keys.signEvent(sender, { kind: AGENT_MESSAGE_KIND, created_at: Math.floor(env.created_at / 1000), tags, content: JSON.stringify(env.payload ?? null) }, path);
    const out: Envelope = { id: env.id ?? signed.id, source: 'agent', from: agentAddress(sender), created_at: env.created_at, payload: env.payload ?? null };
    if (env.metadata) out.metadata = env.metadata;
    if (env.to !== undefined) out.to = env.to;
    out.signed = signed;
    return out;
  }

  /**
   * Whether an envelope `receiver` got is what its sender signed: from an agent whose current key made
   * the signature, over this payload, to this receiver, under this id.
   */
  verify(env: Envelope, receiver: string): boolean {
    const s = env.signed;
    if (!s || typeof s !== 'object') return false;
    const sender = env.from.startsWith('agent:') ? env.from.slice('agent:'.length) : undefined;
    if (sender === undefined || this.keys.pubkey(sender) !== s.pubkey) return false;
    if (s.kind !== AGENT_MESSAGE_KIND || !Array.isArray(s.tags)) return false;
    const tag = (name: string) => s.tags.find((t) => Array.isArray(t) && t[0] === name)?.[1];
    if (tag('p') !== this.keys.pubkey(receiver)) return false;
    if (env.id !== s.id && tag('envelope') !== env.id) return false;
    if (s.content !== JSON.stringify(env.payload ?? null)) return false;
    try {
      return verifyEvent({ ...s });
    } catch {
      return false;
    }
  }
}
