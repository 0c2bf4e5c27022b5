/**
 * Sections of an agent's spec and config that belong to a capability (`"nostr": {...}`): the runtime
 * knows their names only. A capability adds its section when it is attached; from then on the spec
 * written to `/agents/new` and the config written to `/agents/<id>/config` may carry that field, the
 * capability checks it, stores it in the registry's transaction (so a bad section changes nothing and
 * a good one commits with the rest), and `/config` shows it.
 */
import { FsError } from '../fs/errors.js';

export interface AgentSection<V = unknown> {
  /** The top-level field in the spec and the config. */
  readonly name: string;
  /** What was written, checked; EINVAL naming `path` and the field. */
  parse(value: unknown, path: string): V;
  /** Stores it; runs inside the transaction that creates or edits the agent. */
  write(agentId: string, value: V, now: number): void;
  /** What `/config` shows for this field (undefined leaves it out). */
  read(agentId: string): unknown;
  /** After the transaction committed (the capability acts on the new value). */
  changed?(agentId: string): void;
}

/** The sections given in one spec or config write, parsed. */
export interface SectionValues {
  /** The write without the sections' fields (what the runtime's own schema checks). */
  rest: unknown;
  values: { section: AgentSection; value: unknown }[];
}

export class AgentSections {
  private readonly sections = new Map<string, AgentSection>();

  add(section: AgentSection): void {
    if (this.sections.has(section.name)) throw new Error(`agent section '${section.name}' is added twice`);
    this.sections.set(section.name, section as AgentSection);
  }

  names(): string[] {
    return [...this.sections.keys()];
  }

  /** Takes the sections' fields out of a spec or config write and parses each (EINVAL before anything is written). */
  take(raw: unknown, path: string): SectionValues {
    if (this.sections.size === 0 || typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { rest: raw, values: [] };
    const rest: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
    const values: SectionValues['values'] = [];
    for (const section of this.sections.values()) {
      if (!(section.name in rest)) continue;
      const value = rest[section.name];
      delete rest[section.name];
      try {
        values.push({ section, value: section.parse(value, path) });
      } catch (err) {
        if (err instanceof FsError) throw err;
        throw new FsError('EINVAL', path, `${section.name}: ${(err as Error).message}`);
      }
    }
    return { rest, values };
  }

  /** Stores the values (inside the caller's transaction). */
  write(agentId: string, taken: SectionValues, now: number): void {
    for (const { section, value } of taken.values) section.write(agentId, value, now);
  }

  /** Tells each section written that it changed (after the commit). */
  changed(agentId: string, taken: SectionValues): void {
    for (const { section } of taken.values) section.changed?.(agentId);
  }

  /** Every section's value of an agent, as `/config` shows them. */
  read(agentId: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const section of this.sections.values()) {
      const v = section.read(agentId);
      if (v !== undefined) out[section.name] = v;
    }
    return out;
  }
}
