/**
 * The OpenAPI 3.1 description of the HTTP mapping (`GET /openapi.json`, checked in as docs/openapi.json),
 * made from the route table: every row (and the streamed call files, which stand outside it) becomes an
 * operation of its URL; what a row's `doc` says becomes its summary, parameters, body and answers, and
 * every operation that needs a token answers the error statuses of ERROR_TABLE with the one error body.
 * A route added to the table appears here with nothing else to do (with a summary made from its
 * operation until it has a `doc`).
 * - `/*` is `/{path}`: one parameter that spans slashes (OpenAPI cannot say so itself; the parameter says it).
 * - MOVE, which OpenAPI has no field for, is the `x-move` operation of its path item.
 * - Rows of one method and URL (GET of a file and the `?watch=1` SSE watch) are one operation.
 */
import { ERROR_TABLE } from '../fs/errors.js';

export type JsonSchema = Record<string, unknown>;

export interface ParamDoc {
  name: string;
  description: string;
  schema?: JsonSchema;
  required?: boolean;
}

export interface MediaDoc {
  schema?: JsonSchema;
  examples?: Record<string, { summary: string; value: unknown }>;
}

export interface ResponseDoc {
  description: string;
  content?: Record<string, MediaDoc>;
  /** Names of components/headers the answer carries. */
  headers?: string[];
}

/** What the OpenAPI document says of a route. */
export interface RouteDoc {
  summary: string;
  description?: string;
  tags?: string[];
  query?: ParamDoc[];
  /** Request headers the route reads. */
  headers?: ParamDoc[];
  body?: { description: string; required?: boolean; content: Record<string, MediaDoc> };
  /** The route's own answers: its successes (and statuses only it gives, such as 416 or 503). */
  responses: Record<number, ResponseDoc>;
}

/** What the document needs of a route (a row of the table, without its handler). */
export interface DocumentedRoute {
  method: string;
  url: string;
  op: string;
  public?: boolean;
  watch?: boolean;
  doc?: RouteDoc;
}

const bytes = { type: 'string', format: 'binary' };
const str = { type: 'string' };
const int = { type: 'integer' };

const SCHEMAS: Record<string, JsonSchema> = {
  Error: {
    type: 'object',
    description: 'Every error: a POSIX code, a message naming the path, the path (CONTRACT.md section 2).',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message', 'path'],
        properties: {
          code: { type: 'string', enum: Object.keys(ERROR_TABLE) },
          message: { type: 'string', examples: ['/memory/x: no such file or directory'] },
          path: { type: 'string' },
        },
      },
    },
  },
  Stat: {
    type: 'object',
    required: ['type', 'kind', 'size', 'mode', 'mtime', 'ctime', 'version'],
    properties: {
      type: { type: 'string', enum: ['file', 'dir'] },
      kind: { type: 'string', enum: ['dir', 'data', 'view', 'message', 'call', 'stream'] },
      size: int,
      mode: { ...int, description: 'permission bits' },
      mtime: { ...int, description: 'ms since the epoch' },
      ctime: int,
      version: { ...int, description: 'increases on every change: the ETag' },
    },
  },
  Listing: { type: 'array', items: { allOf: [{ $ref: '#/components/schemas/Stat' }, { type: 'object', required: ['name'], properties: { name: str } }] } },
  Event: {
    type: 'object',
    required: ['id', 'type', 'path', 'time'],
    properties: {
      id: { ...int, description: 'the cursor: increases over the whole server' },
      type: { type: 'string', enum: ['created', 'modified', 'deleted', 'data', 'end', 'reset'] },
      path: str,
      time: int,
      version: int,
      data: {},
    },
  },
  Space: {
    type: 'object',
    required: ['total_bytes', 'used_bytes', 'free_bytes'],
    properties: { total_bytes: int, used_bytes: int, free_bytes: int, files: int },
  },
  WriteReceipt: {
    type: 'object',
    description: 'What a write to a message file did: an inbox `{envelope_id, status, dropped?}`, a ctl `{agent, state, ticks}`.',
    additionalProperties: true,
  },
  JsonRpc: {
    description: 'A JSON-RPC 2.0 message, or a batch of them (MCP, CONTRACT.md section 21).',
    oneOf: [
      { type: 'object', required: ['jsonrpc'], properties: { jsonrpc: { const: '2.0' }, id: { type: ['string', 'integer'] }, method: str, params: { type: 'object' } } },
      { type: 'array', items: { type: 'object', required: ['jsonrpc'] } },
    ],
  },
};

const HEADERS: Record<string, { description: string; schema: JsonSchema }> = {
  ETag: { description: 'the file\'s version, quoted: `"<version>"`', schema: str },
  'Last-Modified': { description: 'mtime as an HTTP date', schema: str },
  'X-Agent9-Type': { description: '`file` or `dir`', schema: str },
  'X-Agent9-Kind': { description: '`data`, `view`, `message`, `call`, `stream` or `dir`', schema: str },
  'X-Agent9-Size': { description: 'size in bytes', schema: int },
  'X-Agent9-Mode': { description: 'permission bits in octal', schema: str },
  'X-Agent9-Version': { description: 'the version (as the ETag)', schema: int },
  'X-Agent9-Mtime': { description: 'ms since the epoch', schema: int },
  'X-Agent9-Ctime': { description: 'ms since the epoch', schema: int },
  'Accept-Ranges': { description: '`bytes` on data files', schema: str },
  'Content-Range': { description: '`bytes a-b/size` (206), `bytes */size` (416)', schema: str },
  'X-Agent9-Error': { description: 'the POSIX code of an error (the only trace of one on HEAD)', schema: str },
  'Retry-After': { description: 'seconds to wait (429 EAGAIN)', schema: int },
  'WWW-Authenticate': { description: '`Bearer realm="agent9"` (401)', schema: str },
  Allow: { description: 'the methods of the file mapping', schema: str },
  'Mcp-Session-Id': { description: 'the MCP session this answer belongs to', schema: str },
};

/** The headers a file's stat travels in (HEAD, and the answers of writes). */
export const STAT_HEADERS = ['ETag', 'Last-Modified', 'X-Agent9-Type', 'X-Agent9-Kind', 'X-Agent9-Size', 'X-Agent9-Mode', 'X-Agent9-Version', 'X-Agent9-Mtime', 'X-Agent9-Ctime'];

const HEADERS_OF_STATUS: Record<number, string[]> = { 401: ['WWW-Authenticate'], 405: ['Allow'], 429: ['Retry-After'] };

/** The error answers: one per status of ERROR_TABLE, listing the codes that map to it. */
function errorResponses(): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const [code, m] of Object.entries(ERROR_TABLE)) byStatus.set(m.http, [...(byStatus.get(m.http) ?? []), code]);
  const out: Record<string, unknown> = {};
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[`E${status}`] = {
      description: codes.map((c) => `${c} (${ERROR_TABLE[c as keyof typeof ERROR_TABLE].summary})`).join(', '),
      headers: Object.fromEntries(['X-Agent9-Error', ...(HEADERS_OF_STATUS[status] ?? [])].map((h) => [h, { $ref: `#/components/headers/${h}` }])),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return out;
}

/** The statuses of ERROR_TABLE, each once, in order. */
export function errorStatuses(): number[] {
  return [...new Set(Object.values(ERROR_TABLE).map((m) => m.http))].sort((a, b) => a - b);
}

const WILDCARD = {
  name: 'path',
  in: 'path',
  required: true,
  description:
    'The namespace path without its leading `/`. This one parameter spans slashes: `agents/demo/memory/notes.txt` is the file ' +
    '`/agents/demo/memory/notes.txt` (percent-encode each segment, not the `/` between them; it may be empty: `/` is the root). ' +
    'A trailing `/` asks for the directory form (a GET lists, a PUT makes a directory).',
  schema: { type: 'string' },
  'x-agent9-spans-slashes': true,
  examples: {
    data: { summary: 'a data file', value: 'agents/demo/memory/notes.txt' },
    inbox: { summary: "an agent's inbox (a message file)", value: 'agents/demo/inbox' },
    status: { summary: "an agent's status (a view)", value: 'agents/demo/status' },
    agent: { summary: 'from an agent-scoped token (its namespace at /)', value: 'memory/notes.txt' },
    tokens: { summary: 'minting a token (a call file; admin tokens only)', value: 'runtime/tokens/new' },
    job: { summary: 'a model job (a call file)', value: 'agents/demo/compute/new' },
  },
};

/** `/agents/:id/tick` as OpenAPI writes it (`/agents/{id}/tick`), and its path parameters. */
function openApiPath(url: string): { path: string; params: unknown[] } {
  if (url === '/*') return { path: '/{path}', params: [WILDCARD] };
  const params: unknown[] = [];
  const path = url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string) => {
    params.push({ name, in: 'path', required: true, schema: { type: 'string' }, description: name === 'id' ? 'an agent id' : name });
    return `{${name}}`;
  });
  return { path, params };
}

function media(content: Record<string, MediaDoc>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(content).map(([type, m]) => [type, { schema: m.schema ?? bytes, ...(m.examples ? { examples: m.examples } : {}) }]));
}

function response(r: ResponseDoc): Record<string, unknown> {
  return {
    description: r.description,
    ...(r.headers?.length ? { headers: Object.fromEntries(r.headers.map((h) => [h, { $ref: `#/components/headers/${h}` }])) } : {}),
    ...(r.content ? { content: media(r.content) } : {}),
  };
}

/** One operation from the rows of one method and URL (the first row's doc leads; the others add to it). */
function operation(rows: DocumentedRoute[], path: string, pathParams: unknown[]): Record<string, unknown> {
  const first = rows[0]!;
  const docs = rows.map((r) => r.doc ?? { summary: `${r.method} (${r.op})`, responses: { 200: { description: 'the answer' } } });
  const params: unknown[] = [...pathParams];
  const seen = new Set<string>();
  for (const d of docs) {
    for (const [where, list] of [['query', d.query], ['header', d.headers]] as const) {
      for (const p of list ?? []) {
        if (seen.has(`${where} ${p.name}`)) continue;
        seen.add(`${where} ${p.name}`);
        params.push({ name: p.name, in: where, required: !!p.required, description: p.description, schema: p.schema ?? str });
      }
    }
  }
  const responses: Record<string, unknown> = {};
  for (const d of docs) {
    for (const [status, r] of Object.entries(d.responses)) {
      const prior = responses[status] as { description: string; content?: Record<string, unknown>; headers?: Record<string, unknown> } | undefined;
      const next = response(r) as { description: string; content?: Record<string, unknown>; headers?: Record<string, unknown> };
      responses[status] = prior
        ? { ...prior, ...next, description: `${prior.description}; ${next.description}`, content: { ...prior.content, ...next.content }, headers: { ...prior.headers, ...next.headers } }
        : next;
    }
  }
  if (!first.public) for (const status of errorStatuses()) responses[String(status)] ??= { $ref: `#/components/responses/E${status}` };
  const body = docs.find((d) => d.body)?.body;
  const description = docs
    .map((d) => d.description)
    .filter(Boolean)
    .join('\n\n');
  return {
    // getPath, putPath, movePath, getAgentsIdTick, getHealthz...
    operationId: first.method.toLowerCase() + path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase()),
    summary: docs.map((d) => d.summary).join('; '),
    ...(description ? { description } : {}),
    tags: [...new Set(docs.flatMap((d) => d.tags ?? []))],
    ...(params.length ? { parameters: params } : {}),
    ...(body ? { requestBody: { description: body.description, required: !!body.required, content: media(body.content) } } : {}),
    responses,
    ...(first.public ? { security: [] } : {}),
    'x-agent9-op': [...new Set(rows.map((r) => r.op))].join(', '),
  };
}

const DESCRIPTION = `Every capability of agent9 is a file, and the HTTP mapping is one route per verb on one wildcard path: \`/{path}\` is the namespace path, and the file's kind (data, view, message, call, stream, dir) decides what a verb does (CONTRACT.md section 12).

- **Tokens**: every request but the health probes and this document needs \`Authorization: Bearer a9_<id>_<secret>\`. An admin token sees the global view (\`/agents/<id>/...\`, \`/runtime/...\`); an agent-scoped token sees its agent's namespace at \`/\`. Tokens are files too: POST \`{name?, agent?, paths?, read_only?, ttl?}\` to \`/runtime/tokens/new\` mints one (admin tokens only), DELETE \`/runtime/tokens/<id>\` revokes it (section 13).
- **MOVE** (rename, \`Destination\` header) has no field in OpenAPI: it is the \`x-move\` operation of \`/{path}\`.
- **Watch**: \`GET /{path}?watch=1\` is a Server-Sent Events stream of the file's or subtree's events; \`Last-Event-ID\` or \`?from=\` resumes with nothing lost.
- **Errors**: every error is \`{"error": {"code", "message", "path"}}\` with the status of its POSIX code.
- **MCP**: \`/mcp\` is the same namespace for MCP clients (JSON-RPC over streamable HTTP, section 21).`;

export function openApiDocument(routes: readonly DocumentedRoute[], version: string): Record<string, unknown> {
  const byPath = new Map<string, { params: unknown[]; methods: Map<string, DocumentedRoute[]> }>();
  for (const r of routes) {
    const { path, params } = openApiPath(r.url);
    const item = byPath.get(path) ?? { params, methods: new Map<string, DocumentedRoute[]>() };
    byPath.set(path, item);
    const key = r.method === 'MOVE' ? 'x-move' : r.method.toLowerCase();
    item.methods.set(key, [...(item.methods.get(key) ?? []), r]);
  }
  const paths: Record<string, unknown> = {};
  // Static paths first, the wildcard last: the order a reader (and a router) should try them.
  const ordered = [...byPath.keys()].sort((a, b) => Number(a.includes('{path}')) - Number(b.includes('{path}')) || a.localeCompare(b));
  for (const p of ordered) {
    const item = byPath.get(p)!;
    const ops: Record<string, unknown> = {};
    for (const [method, rows] of item.methods) ops[method] = operation(rows, p, item.params);
    paths[p] = ops;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'agent9 HTTP API', version, description: DESCRIPTION, license: { name: 'MIT', identifier: 'MIT' } },
    servers: [{ url: '/', description: 'the server this document came from (agentctl serve listens on 127.0.0.1:7070 by default)' }],
    security: [{ bearer: [] }],
    tags: [
      { name: 'files', description: 'the file mapping: every path of the namespace' },
      { name: 'agents', description: 'agent routes kept for compatibility: each a file operation' },
      { name: 'health', description: 'probes, no token' },
      { name: 'mcp', description: 'the MCP server (streamable HTTP)' },
      { name: 'meta', description: 'this document' },
    ],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an agent9 token, `a9_<id>_<secret>` (admin, or scoped to an agent, paths, read-only, a ttl)' } },
      schemas: SCHEMAS,
      headers: HEADERS,
      responses: errorResponses(),
    },
  };
}
