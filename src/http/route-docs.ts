/**
 * What the OpenAPI document says of each route (openapi.ts): the rows of the route table point here
 * (`doc: DOCS.read`), so the document is made from the table and only the words live apart. Statuses are
 * the successes of CONTRACT.md section 12 (and the few a route alone gives); the error answers come
 * from ERROR_TABLE for every route that needs a token.
 */
import { STAT_HEADERS, type MediaDoc, type ParamDoc, type RouteDoc } from './openapi.js';

const ANY = { '*/*': {} } satisfies Record<string, MediaDoc>;
const JSON_OBJECT = { 'application/json': { schema: { type: 'object', additionalProperties: true } } } satisfies Record<string, MediaDoc>;
const RECEIPT = { 'application/json': { schema: { $ref: '#/components/schemas/WriteReceipt' } } } satisfies Record<string, MediaDoc>;
const HEALTH = { 'application/json': { schema: { type: 'object', required: ['status'], properties: { status: { type: 'string' }, reason: { type: 'string' } } } } };

const RPC_ERROR = { 'application/json': { schema: { $ref: '#/components/schemas/JsonRpc' } } } satisfies Record<string, MediaDoc>;

const IF_MATCH: ParamDoc = { name: 'If-Match', description: 'only if the file is at this version (`"<version>"`, a list, or `*`): else 412 ESTALE' };
const BODY_BYTES = { description: 'the bytes to write, whatever the Content-Type says (a Content-Type saying JSON must parse when the file is a message or call file)', content: ANY };

/** Example request bodies for POST to the files users post to most. */
const POST_EXAMPLES: Record<string, { summary: string; value: unknown }> = {
  message: { summary: 'a message to agents/<id>/inbox (text, or an envelope {payload, id?, metadata?})', value: 'hello' },
  agent: { summary: 'an agent spec to agents/new', value: { name: 'alice', program: 'echo' } },
  token: { summary: 'a token request to runtime/tokens/new (admin tokens only)', value: { name: 'ci', agent: 'alice', ttl: '1h' } },
  job: { summary: 'a model job to agents/<id>/compute/new', value: { model: 'echo', prompt: 'hello world' } },
  session: { summary: 'a container session to agents/<id>/containers/new', value: { commands: ['echo hi'], wait: true } },
};

export const DOCS = {
  read: {
    summary: 'Read a file, list a directory, or the space of its tree',
    description:
      'A data file or view: its bytes (`Range: bytes=a-b` on a data file gives 206 with that part). A directory (or a trailing `/`): its listing. ' +
      'A stream file (a job stream, logs/trace): its data, chunked, until the stream ends. `?statfs=1`: the space of the tree (a quota under /memory).',
    tags: ['files'],
    query: [{ name: 'statfs', description: '`1`: answer the space of the tree holding the path (JSON) instead' }],
    headers: [
      { name: 'Range', description: '`bytes=a-b`, `bytes=a-` or `bytes=-n` (data files)' },
      { name: 'If-Range', description: 'the ETag or Last-Modified the Range is good for; else the whole file' },
      { name: 'If-None-Match', description: 'an ETag: 304 when the file is still at it' },
    ],
    responses: {
      200: {
        description: 'the content (its type from its name or content), a listing, a stream, or the space',
        headers: ['ETag', 'Last-Modified', 'Accept-Ranges'],
        content: {
          '*/*': { schema: { type: 'string', format: 'binary', description: "the file's bytes; its type from its name, else its service, else its content (JSON, UTF-8 text, bytes)" } },
          'application/json': { schema: { oneOf: [{ $ref: '#/components/schemas/Listing' }, { $ref: '#/components/schemas/Space' }, {}] } },
          'application/x-ndjson': { schema: { type: 'string', description: 'a stream: one JSON value per line' } },
        },
      },
      206: { description: 'the part of a data file its Range asked for (typed as the whole file)', headers: ['Content-Range', 'ETag', 'Accept-Ranges'], content: ANY },
      304: { description: 'not modified (If-None-Match)', headers: STAT_HEADERS },
      416: {
        description: 'the range starts at or past the end of the file (EINVAL)',
        headers: ['Content-Range', 'X-Agent9-Error'],
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      },
    },
  },
  watch: {
    summary: 'Watch a file or subtree (SSE, `?watch=1`)',
    description:
      'Server-Sent Events: a first frame `: watching <path>`, `retry:` and `id: <cursor>`; then one frame per event (`id`, `event: <type>`, `data: <event JSON>`); ' +
      '`: heartbeat` every 15 s; an `event: error` frame then the end when it fails after the start. `Last-Event-ID` (or `?from=`) replays every event after that id first.',
    tags: ['files'],
    query: [
      { name: 'watch', description: '`1`: watch instead of read' },
      { name: 'from', description: 'an event id to resume after', schema: { type: 'integer' } },
    ],
    headers: [{ name: 'Last-Event-ID', description: 'the id of the last event seen (wins over ?from=)' }],
    responses: {
      200: { description: 'the event stream', content: { 'text/event-stream': { schema: { type: 'string', description: 'SSE frames whose data is an Event' } } } },
    },
  },
  stat: {
    summary: 'Stat a file (the headers a GET would send)',
    tags: ['files'],
    responses: { 200: { description: 'the stat in headers, with GET\'s Content-Type and Content-Length', headers: [...STAT_HEADERS, 'Accept-Ranges'] } },
  },
  put: {
    summary: 'Write the whole file (create or replace); with a trailing `/`, make a directory',
    tags: ['files'],
    query: [{ name: 'mode', description: 'octal mode of a new file or directory, e.g. `0600`' }],
    headers: [IF_MATCH, { name: 'If-None-Match', description: '`*`: create only (412 ESTALE when it exists)' }],
    body: BODY_BYTES,
    responses: {
      200: { description: 'a message file: what the write did (a ctl, or a duplicate envelope)', headers: STAT_HEADERS, content: RECEIPT },
      201: { description: 'a data file (or a directory) was created; a message file queued an envelope', headers: STAT_HEADERS, content: RECEIPT },
      204: { description: 'replaced', headers: STAT_HEADERS },
    },
  },
  post: {
    summary: 'By the kind of file: call it, send it one message, replace a view, or append (`?append=1`)',
    description:
      'A call file (agents/new, runtime/tokens/new, compute/new, containers/new, identity/sign, logs/query...): the request, answered on the same handle. ' +
      'A message file (an inbox, a ctl): one message, answered by what it did. A writable view (a policy): replaced. A data file: 405 unless `?append=1`.',
    tags: ['files'],
    query: [{ name: 'append', description: '`1`: append to a data file, or send one message' }],
    headers: [IF_MATCH],
    body: { ...BODY_BYTES, content: { '*/*': { examples: POST_EXAMPLES } } },
    responses: {
      200: { description: "a call's answer; a ctl's report; a duplicate envelope", content: { 'application/json': { schema: { type: 'object', additionalProperties: true } }, 'text/plain': { schema: { type: 'string' } }, 'application/octet-stream': {} } },
      201: { description: 'an inbox queued the envelope (`{envelope_id, status}`); an append created the data file', headers: STAT_HEADERS, content: RECEIPT },
      204: { description: 'an empty answer; a view replaced; appended', headers: STAT_HEADERS },
    },
  },
  remove: {
    summary: 'Remove a file or an empty directory (`/agents/<id>` deletes the agent)',
    tags: ['files'],
    headers: [IF_MATCH],
    responses: { 204: { description: 'removed' } },
  },
  move: {
    summary: 'Rename within one mount (MOVE: an x- extension, OpenAPI has no MOVE)',
    tags: ['files'],
    headers: [{ name: 'Destination', description: 'the new path (a path or a URL; percent-encoded segments)', required: true }],
    responses: { 204: { description: 'renamed' } },
  },
  options: {
    summary: 'The methods of the file mapping; a CORS preflight from a listed origin (no token)',
    tags: ['files'],
    responses: { 204: { description: 'the methods in Allow', headers: ['Allow'] } },
  },
  listAgents: {
    summary: "Every agent's status",
    tags: ['agents'],
    responses: { 200: { description: 'a JSON array of status objects (an unreadable one is `{id, error}`)', content: { 'application/json': { schema: { type: 'array', items: { type: 'object' } } } } } },
  },
  createAgent: {
    summary: 'Create an agent (the call of /agents/new)',
    tags: ['agents'],
    body: { description: 'the agent spec `{name, program, env?, limits?, schedule?, inbox?, goals?}`', required: true, content: { 'application/json': { schema: { type: 'object' }, examples: { echo: { summary: 'an echo agent', value: { name: 'alice', program: 'echo' } } } } } },
    responses: { 201: { description: "the new agent's status", content: JSON_OBJECT } },
  },
  tick: {
    summary: "Tick an agent now (`tick` to its ctl)",
    tags: ['agents'],
    responses: { 200: { description: "the tick's report", content: JSON_OBJECT } },
  },
  send: {
    summary: "Send one message to an agent's inbox",
    tags: ['agents'],
    body: { description: 'the message: text, or an envelope `{payload, id?, metadata?}`', required: true, content: ANY },
    responses: {
      200: { description: 'an envelope of that id is queued already (`status: duplicate`)', content: RECEIPT },
      201: { description: 'queued: `{envelope_id, status}`', headers: STAT_HEADERS, content: RECEIPT },
    },
  },
  importAgent: {
    summary: 'Import an agent from an export bundle (streamed: never held whole, no body limit)',
    tags: ['agents'],
    body: { description: 'the bundle (version 2 JSON lines, optionally after an options line `{id?, new_identity?}`; or a version 1 document)', required: true, content: { 'application/octet-stream': {} } },
    responses: { 200: { description: "the imported agent's status", content: JSON_OBJECT }, 204: { description: 'no answer' } },
  },
  healthz: {
    summary: 'The process answers HTTP (no token)',
    tags: ['health'],
    responses: { 200: { description: '`{"status": "ok"}`', content: HEALTH } },
  },
  readyz: {
    summary: 'The server can serve: storage open, every migration recorded (no token)',
    tags: ['health'],
    responses: { 200: { description: '`{"status": "ready"}`', content: HEALTH }, 503: { description: '`{"status": "not ready", "reason": ...}` (also while it shuts down)', content: HEALTH } },
  },
  mcpPost: {
    summary: 'MCP: JSON-RPC messages to the session (an initialize opens one)',
    description: 'The Model Context Protocol over streamable HTTP (CONTRACT.md section 21). Send `Accept: application/json, text/event-stream`, and `Mcp-Session-Id` after the initialize.',
    tags: ['mcp'],
    headers: [
      { name: 'Mcp-Session-Id', description: 'the session (every request but the initialize)' },
      { name: 'MCP-Protocol-Version', description: 'the protocol version agreed at initialize' },
    ],
    body: { description: 'a JSON-RPC 2.0 message or a batch', required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/JsonRpc' } } } },
    responses: {
      200: {
        description: 'the answer (JSON; an SSE stream of notifications then the answer when a request asks for progress)',
        headers: ['Mcp-Session-Id'],
        content: { 'application/json': { schema: { $ref: '#/components/schemas/JsonRpc' } }, 'text/event-stream': { schema: { type: 'string' } } },
      },
      202: { description: 'notifications or responses only: accepted', headers: ['Mcp-Session-Id'] },
      400: { description: 'not JSON (-32700), not JSON-RPC (-32600), no session id, an unsupported protocol version', content: RPC_ERROR },
      404: { description: 'no such session, or another token\'s (-32001): start again with initialize', content: RPC_ERROR },
    },
  },
  mcpGet: {
    summary: "MCP: the session's stream of messages that answer no request (SSE)",
    tags: ['mcp'],
    headers: [{ name: 'Mcp-Session-Id', description: 'the session', required: true }],
    responses: {
      200: { description: 'SSE: `notifications/resources/updated` and the like; a heartbeat comment every 15 s', content: { 'text/event-stream': { schema: { type: 'string' } } } },
      404: { description: 'no such session (-32001)', content: RPC_ERROR },
      406: { description: 'the request does not accept text/event-stream', content: RPC_ERROR },
      409: { description: 'the session has its stream open already', content: RPC_ERROR },
    },
  },
  mcpDelete: {
    summary: 'MCP: end the session',
    tags: ['mcp'],
    headers: [{ name: 'Mcp-Session-Id', description: 'the session', required: true }],
    responses: { 200: { description: 'ended' }, 404: { description: 'no such session (-32001)', content: RPC_ERROR } },
  },
  openapi: {
    summary: 'This document (no token)',
    tags: ['meta'],
    responses: { 200: { description: 'the OpenAPI 3.1 description of the HTTP mapping', content: { 'application/json': { schema: { type: 'object' } } } } },
  },
} satisfies Record<string, RouteDoc>;
