/**
 * The route table's one prologue, checked on every row as a client meets it: without a valid token
 * every route but OPTIONS answers 401 EAUTH (JSON, WWW-Authenticate), before it looks at the path; a
 * malformed path is 400 EINVAL naming it; a body is taken as bytes whatever its Content-Type says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/app.js';
import { cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from './helpers.js';

let s: FixtureServer;
beforeAll(async () => {
  s = await startFixtureServer();
});
afterAll(async () => {
  await s.close();
  cleanup();
});

/** A URL a row serves: its pattern with a wildcard or parameter filled in (and ?watch=1 for the watch row). */
function urlOf(route: (typeof ROUTES)[number], path = 'data/x'): string {
  const url = route.url.replace('*', path).replace(':id', 'someone');
  return route.watch ? `${url}?watch=1` : url;
}

describe('the route prologue', () => {
  it('every route but OPTIONS refuses a request without a valid token with 401 EAUTH, before it reads the path', async () => {
    const callerRoutes = ROUTES.filter((r) => !r.public);
    expect(callerRoutes.length).toBeGreaterThanOrEqual(10);
    for (const route of callerRoutes) {
      for (const token of [null, 'not-a-token']) {
        // A path that would be EINVAL (a NUL byte): the token is judged first.
        const res = await s.req(urlOf(route, 'data/nul%00byte'), { method: route.method, token, ...(route.method === 'GET' || route.method === 'HEAD' ? {} : { body: 'x' }) });
        expect(res.status, `${route.method} ${route.url} token=${token}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(res.headers.get('x-agent9-error')).toBe('EAUTH');
        if (route.method !== 'HEAD') expect(((await res.json()) as { error: { code: string } }).error.code).toBe('EAUTH');
        else await res.arrayBuffer();
      }
    }
    const options = await s.req('/data/x', { method: 'OPTIONS', token: null });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toContain('MOVE');
  });

  it('a malformed path is 400 EINVAL naming it, on every file route', async () => {
    for (const route of ROUTES.filter((r) => !r.public && r.url === '/*')) {
      for (const [bad, named] of [
        ['data/bad%zz', '/data/bad%zz'],
        ['data/nul%00byte', '/data/nul\\0byte'],
      ] as const) {
        const res = await s.req(urlOf(route, bad), { method: route.method, ...(route.method === 'GET' || route.method === 'HEAD' ? {} : { body: 'x' }) });
        expect(res.status, `${route.method} ${bad}`).toBe(400);
        expect(res.headers.get('x-agent9-error')).toBe('EINVAL');
        if (route.method !== 'HEAD') expect(((await res.json()) as { error: { path: string } }).error.path).toContain(named.slice(0, 9));
        else await res.arrayBuffer();
      }
    }
  });

  it('a body is bytes whatever its Content-Type says, malformed ones included', async () => {
    for (const [i, type] of ['application/json', 'text/plain; charset=nonsense', ';;;', 'image/png'].entries()) {
      const put = await s.req('/data/typed', { method: 'PUT', body: '{not json', headers: { 'content-type': type } });
      expect(put.status, type).toBe(i === 0 ? 201 : 204);
      expect(await (await s.req('/data/typed')).text()).toBe('{not json');
    }
  });
});
