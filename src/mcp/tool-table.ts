/**
 * The tools as a table: each has a name, a description, a zod schema for its arguments (published as
 * JSON Schema by tools/list: a file is always named by `path`) and a function of the checked arguments.
 * Arguments are checked here, not by the SDK, so a bad one is EINVAL worded as every service words it
 * (`field 'path': ...`, `unknown field 'x'`) and comes back as an error result like any other failure.
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import type { Cx } from '../fs/types.js';
import { describeIssues } from '../services/kit/index.js';
import { toolError } from './results.js';
import type { McpScope } from './session.js';

/** What a tool's function gets besides its arguments. */
export interface ToolCall {
  scope: McpScope;
  /** The session's Cx for this request (cancelled with it). */
  cx: Cx;
  /** Sends a progress notification when the client asked for them (a `progressToken`). */
  progress(progress: number, message?: string): Promise<void>;
}

export interface ToolDef<S extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  schema: S;
  annotations?: Tool['annotations'];
  run(args: z.infer<S>, call: ToolCall): Promise<CallToolResult>;
}

/** A tool definition, typed by its schema. */
export function tool<S extends z.ZodObject>(def: ToolDef<S>): ToolDef {
  return def as unknown as ToolDef;
}

/** A schema's JSON Schema as tools/list publishes it (the input side: defaults are optional). */
function inputSchemaOf(schema: z.ZodObject): Tool['inputSchema'] {
  const json = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
  delete json['$schema'];
  return json as Tool['inputSchema'];
}

export class ToolTable {
  private readonly byName = new Map<string, ToolDef>();
  /** tools/list's answer, made once: it is the same for every session. */
  readonly listed: Tool[];

  constructor(defs: readonly ToolDef[]) {
    for (const d of defs) this.byName.set(d.name, d);
    this.listed = defs.map((d) => ({
      name: d.name,
      title: d.title,
      description: d.description,
      inputSchema: inputSchemaOf(d.schema),
      ...(d.annotations ? { annotations: d.annotations } : {}),
    }));
  }

  async call(name: string, args: unknown, call: ToolCall): Promise<CallToolResult> {
    const path = typeof (args as { path?: unknown } | undefined)?.path === 'string' ? (args as { path: string }).path : '/';
    try {
      const def = this.byName.get(name);
      if (!def) throw new FsError('EINVAL', path, `no tool '${name}' (tools: ${[...this.byName.keys()].join(', ')})`);
      const parsed = def.schema.safeParse(args ?? {});
      if (!parsed.success) throw new FsError('EINVAL', path, `${name}: ${describeIssues(parsed.error)}`);
      return await def.run(parsed.data, call);
    } catch (err) {
      return toolError(err, path);
    }
  }
}
