/**
 * The OpenAPI document (`GET /openapi.json`) of the assembled server on a real socket: it validates as
 * OpenAPI 3.1 (@seriousme/openapi-schema-validator), it is the checked-in docs/openapi.json byte for byte,
 * every route fastify registers is in it (and nothing else), it says what the issue asks it to say, and a
 * small client that knows only the document (paths, parameters, methods, security, answers) makes real
 * calls with it. `AGENT9_UPDATE_OPENAPI=1` rewrites the checked-in file from the server's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { ROOT } from '../cli/helpers.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

const CHECKED_IN = join(ROOT, 'docs', 'openapi.json');

type Doc = {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme: string }>; responses: Record<string, unknown>; schemas: Record<string, unknown> };
};
type Param = { name: string; in: string; required?: boolean; 'x-agent9-spans-slashes'?: boolean };
type Operation = { operationId: string; parameters?: Param[]; responses: Record<string, { $ref?: string; content?: Record<string, unknown> }>; security?: unknown[]; requestBody?: unknown };

let s: Served;
let text: string;
let doc: Doc;

beforeAll(async () => {
  s = await serveAgent9();
  const res = await fetch(`${s.server.url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  text = await res.text();
  doc = JSON.parse(text) as Doc;
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

/** Every (method, URL) fastify registered, read from its own route tree (printRoutes). */
function registeredRoutes(tree: string): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = [];
  // Each level of the tree is 4 characters of drawing ("├── ", "│   "); stack[n] is the URL at level n.
  const stack: string[] = [''];
  for (const line of tree.split('\n')) {
    const m = /^([│├└─ ]*)(\S+) \(([A-Z, ]+)\)( \{.*\})?$/.exec(line);
    if (!m) continue;
    const level = m[1]!.length / 4;
    let url: string;
    if (m[4]) url = stack[level]!; // a constrained variant (the ?watch=1 GET), drawn under the URL it shares
    else {
      url = stack[level - 1]! + (m[2]! === '*' ? '/*' : m[2]!);
      stack[level] = url;
    }
    for (const method of m[3]!.split(', ')) out.push({ method, url });
  }
  return out;
}

/** `/agents/:id/tick` → `/agents/{id}/tick`, `/*` → `/{path}`; MOVE → `x-move`. */
const docPath = (url: string) => (url === '/*' ? '/{path}' : url.replace(/:(\w+)/g, '{$1}'));
const docMethod = (method: string) => (method === 'MOVE' ? 'x-move' : method.toLowerCase());

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(text) as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('is the checked-in docs/openapi.json, exactly', () => {
    if (process.env['AGENT9_UPDATE_OPENAPI'] === '1') writeFileSync(CHECKED_IN, text);
    const checkedIn = readFileSync(CHECKED_IN, 'utf8');
    expect(checkedIn === text, 'docs/openapi.json differs from what the server serves: AGENT9_UPDATE_OPENAPI=1 npx vitest run test/http/openapi.test.ts').toBe(true);
  });

  it('has every route the server registers, and no operation the server does not serve', () => {
    const routes = registeredRoutes(s.server.app.printRoutes({ commonPrefix: false }));
    expect(routes.length).toBeGreaterThan(15);
    const missing = routes.filter((r) => !doc.paths[docPath(r.url)]?.[docMethod(r.method)]).map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
    const registered = new Set(routes.map((r) => `${docMethod(r.method)} ${docPath(r.url)}`));
    const extra = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => !registered.has(`${m} ${p}`)).map((m) => `${m} ${p}`));
    expect(extra).toEqual([]);
  });

  it('says the wildcard spans slashes, MOVE as x-move, the SSE watch, tokens, health, MCP and the error schema', () => {
    const files = doc.paths['/{path}']!;
    expect(Object.keys(files).sort()).toEqual(['delete', 'get', 'head', 'options', 'post', 'put', 'x-move']);
    const wildcard = files['get']!.parameters!.find((p) => p.in === 'path')!;
    expect(wildcard).toMatchObject({ name: 'path', required: true, 'x-agent9-spans-slashes': true });
    expect(JSON.stringify(wildcard)).toMatch(/spans slashes/);
    expect(JSON.stringify(wildcard)).toContain('runtime/tokens/new');
    const q = (op: Operation) => (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    expect(q(files['get']!)).toEqual(expect.arrayContaining(['statfs', 'watch', 'from']));
    expect(q(files['put']!)).toContain('mode');
    expect(q(files['post']!)).toContain('append');
    expect((files['x-move']!.parameters ?? []).find((p) => p.name === 'Destination')).toMatchObject({ in: 'header', required: true });
    expect(files['get']!.responses['200']!.content).toHaveProperty(['text/event-stream']);
    expect(doc.components.securitySchemes['bearer']).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/healthz']!['get']!.security).toEqual([]);
    expect(doc.paths['/readyz']!['get']!.responses).toHaveProperty('503');
    expect(doc.paths['/openapi.json']!['get']!.security).toEqual([]);
    expect(Object.keys(doc.paths['/mcp']!).sort()).toEqual(['delete', 'get', 'post']);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/agents', '/agents/{id}/tick', '/agents/{id}/send', '/agents/import']));
    const error = JSON.stringify(doc.components.schemas['Error']);
    for (const code of Object.keys(ERROR_TABLE)) expect(error).toContain(`"${code}"`);
  });

  it('has every HTTP status CONTRACT.md names', () => {
    const contract = readFileSync(join(ROOT, 'CONTRACT.md'), 'utf8');
    const section = (from: string, to: string) => contract.slice(contract.indexOf(from), contract.indexOf(to, contract.indexOf(from) + 1));
    const http = [section('## 12. HTTP', '## 14.'), section('## 20. MCP', '\n## 21.')].join('\n');
    const named = new Set<number>();
    const patterns = [/\*\*([1-5]\d\d)\b/g, /\b([1-5]\d\d) (?:E[A-Z]{3,}|created|replaced)\b/g, /\| ([1-5]\d\d)(?: \/ ([1-5]\d\d))?(?: \/ ([1-5]\d\d))? \|/g, /\b(?:answers?|is|get|gets|gives|status) \**([1-5]\d\d)\b/g, ];
    for (const re of patterns) for (const m of http.matchAll(re)) for (const g of m.slice(1)) if (g) named.add(Number(g));
    // Section 2's table: code, meaning, errno, HTTP status, exit code.
    for (const m of section('## 2. Errors', '## 3.').matchAll(/^\| E[A-Z]+ \| [^|]+ \| \d+ \| (\d{3})/gm)) named.add(Number(m[1]));
    expect([...named].sort()).toEqual(expect.arrayContaining([200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 412, 416, 429, 500, 503]));
    const documented = new Set(Object.values(doc.paths).flatMap((ops) => Object.values(ops).flatMap((op) => Object.keys(op.responses).map(Number))));
    expect([...named].filter((n) => !documented.has(n)).sort()).toEqual([]);
  });
});

/**
 * A client that knows only the document: an operation by its id, its URL from the path template and the
 * path parameters (the one that spans slashes keeps them), query parameters only as the document names
 * them, the method (x-move is MOVE), the bearer token where the operation asks for it; each answer's
 * status must be one the operation documents, with a media type it documents.
 */
function documentClient(d: Doc, base: string, token: string) {
  const ops = new Map<string, { path: string; method: string; op: Operation }>();
  for (const [path, item] of Object.entries(d.paths)) for (const [method, op] of Object.entries(item)) ops.set(op.operationId, { path, method: method === 'x-move' ? 'MOVE' : method.toUpperCase(), op });
  return async (id: string, args: { path?: Record<string, string>; query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}) => {
    const found = ops.get(id);
    if (!found) throw new Error(`no operation ${id} in the document`);
    const { path, method, op } = found;
    const params = op.parameters ?? [];
    let url = path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      const p = params.find((x) => x.in === 'path' && x.name === name);
      const v = args.path?.[name];
      if (!p || v === undefined) throw new Error(`${id}: no value for path parameter ${name}`);
      return p['x-agent9-spans-slashes'] ? v.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(v);
    });
    for (const name of Object.keys(args.query ?? {})) if (!params.some((p) => p.in === 'query' && p.name === name)) throw new Error(`${id}: the document has no query parameter ${name}`);
    if (args.query) url += `?${new URLSearchParams(args.query).toString()}`;
    const secured = (op.security ?? [{ bearer: [] }]).length > 0;
    const scheme = d.components.securitySchemes['bearer']!;
    const headers: Record<string, string> = { ...args.headers };
    if (secured && scheme.type === 'http' && scheme.scheme === 'bearer') headers['authorization'] = `Bearer ${token}`;
    const res = await fetch(new URL(url.slice(1), new URL(d.servers[0]!.url, base + '/')), { method, headers, ...(args.body !== undefined ? { body: args.body } : {}) });
    const documented = op.responses[String(res.status)];
    if (!documented) throw new Error(`${id}: status ${res.status} is not in the document (${Object.keys(op.responses).join(', ')})`);
    const type = res.headers.get('content-type')?.split(';')[0];
    const content = documented.$ref ? d.components.responses[documented.$ref.split('/').pop()!] as { content?: Record<string, unknown> } : documented;
    if (type && content.content && !('*/*' in content.content)) expect(Object.keys(content.content), `${id} answered ${type}`).toContain(type);
    return res;
  };
}

describe('a client driven by the document', () => {
  it('creates an agent, writes and reads a file, sends a message, ticks, renames, watches and probes health', async () => {
    const api = documentClient(doc, s.server.url, s.server.adminToken);
    expect((await api('getHealthz')).status).toBe(200);
    const created = await api('postAgents', { body: JSON.stringify({ name: 'doc', program: 'echo' }) });
    expect(created.status).toBe(201);
    expect(((await created.json()) as { id: string }).id).toBe('doc');
    expect((await api('putPath', { path: { path: 'agents/doc/memory/notes/' } })).status).toBe(201);
    expect((await api('putPath', { path: { path: 'agents/doc/memory/notes/a.txt' }, query: { mode: '0600' }, body: 'from the document' })).status).toBe(201);
    const read = await api('getPath', { path: { path: 'agents/doc/memory/notes/a.txt' } });
    expect(await read.text()).toBe('from the document');
    const part = await api('getPath', { path: { path: 'agents/doc/memory/notes/a.txt' }, headers: { range: 'bytes=5-7' } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe('the');
    const head = await api('headPath', { path: { path: 'agents/doc/memory/notes/a.txt' } });
    expect(head.headers.get('x-agent9-mode')).toBe('0600');
    const sent = await api('postAgentsIdSend', { path: { id: 'doc' }, body: 'hello' });
    expect(sent.status).toBe(201);
    expect(await sent.json()).toMatchObject({ status: 'queued' });
    expect((await api('postAgentsIdTick', { path: { id: 'doc' } })).status).toBe(200);
    expect((await api('movePath', { path: { path: 'agents/doc/memory/notes/a.txt' }, headers: { destination: '/agents/doc/memory/notes/b.txt' } })).status).toBe(204);
    const listing = (await (await api('getPath', { path: { path: 'agents/doc/memory/notes/' } })).json()) as { name: string }[];
    expect(listing.map((e) => e.name)).toEqual(['b.txt']);
    const missing = await api('getPath', { path: { path: 'agents/doc/memory/nope' } });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('ENOENT');
    const watch = await api('getPath', { path: { path: 'agents/doc/memory' }, query: { watch: '1', from: '0' } });
    expect(watch.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await watch.body?.cancel();
    expect((await api('deletePath', { path: { path: 'agents/doc/memory/notes/b.txt' } })).status).toBe(204);
    await expect(api('getPath', { path: { path: 'x' }, query: { bogus: '1' } })).rejects.toThrow(/no query parameter bogus/);
  });
});
