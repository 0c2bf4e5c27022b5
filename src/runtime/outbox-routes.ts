/**
 * Where an outbox envelope with a `to` goes. Each kind of address has its route (`nostr:<npub>` is the
 * Nostr capability's; agents of this server are another's): the tick engine hands every addressed
 * envelope to the first route that accepts its `to`, inside the transaction that records the tick, so
 * that what a route takes is durable exactly when the tick is. A route that delivers over the network
 * takes the envelope into a queue of its own there and sends it after the commit (`committed`). An
 * address no route accepts stays in the outbox as a record only.
 */
import type { Envelope } from './spec.js';

export interface OutboxRoute {
  /** A short name (traces, errors). */
  readonly name: string;
  /** Whether `to` is an address of this route. */
  accepts(to: string): boolean;
  /**
   * Takes one envelope the agent emitted, inside the tick's transaction. A refusal (a bad address, the
   * capability off for this agent) is recorded by the route, not thrown: the tick commits regardless.
   * A throw is a fault (the database) and fails the tick.
   */
  take(agentId: string, env: Envelope & { to: string }): void;
  /** After the tick's transaction committed, for the agents whose envelopes this route took. */
  committed?(agentIds: ReadonlySet<string>): void;
}

export class OutboxRoutes {
  private readonly routes: OutboxRoute[] = [];

  add(route: OutboxRoute): void {
    if (this.routes.some((r) => r.name === route.name)) throw new Error(`outbox route '${route.name}' is added twice`);
    this.routes.push(route);
  }

  /** The route of an address, if any. */
  find(to: string): OutboxRoute | undefined {
    return this.routes.find((r) => r.accepts(to));
  }

  /**
   * Hands each addressed envelope of one commit to its route (inside the transaction); returns what to
   * call once it committed.
   */
  dispatch(agentId: string, envelopes: readonly Envelope[]): (() => void) | undefined {
    let used: Map<OutboxRoute, Set<string>> | undefined;
    for (const env of envelopes) {
      if (env.to === undefined) continue;
      const route = this.find(env.to);
      if (!route) continue;
      route.take(agentId, env as Envelope & { to: string });
      used ??= new Map();
      let agents = used.get(route);
      if (!agents) used.set(route, (agents = new Set()));
      agents.add(agentId);
    }
    if (!used) return undefined;
    const done = used;
    return () => {
      for (const [route, agents] of done) route.committed?.(agents);
    };
  }
}
