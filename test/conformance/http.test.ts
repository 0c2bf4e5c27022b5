/**
 * The conformance cases over HTTP on a real loopback socket, twice: with plain requests (what curl
 * does: the mapping itself) and through the HTTP client FileService (what agentctl does).
 */
import { afterAll } from 'vitest';
import { conformance } from './cases.js';
import { serviceTransport } from './service.js';
import { TransportError, type Transport, type WatchedEvent } from './transport.js';
import { cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from '../http/helpers.js';
import { HttpFileService, encodePath } from '../../src/http/client.js';
import { SseParser } from '../../src/http/sse-parser.js';

const servers: FixtureServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  cleanup();
});

async function fresh(): Promise<FixtureServer> {
  const s = await startFixtureServer();
  servers.push(s);
  return s;
}

/** Requests as curl makes them; errors come from the JSON body. */
function rawTransport(s: FixtureServer): Transport {
  async function call(method: string, path: string, init: { body?: string; query?: string; slash?: boolean } = {}): Promise<Response> {
    const url = encodePath(path) + (init.slash && path !== '/' ? '/' : '') + (init.query ? `?${init.query}` : '');
    const res = await s.req(url, { method, ...(init.body !== undefined ? { body: init.body } : {}) });
    if (res.status >= 400) {
      const text = await res.text();
      let code = res.headers.get('x-agent9-error') ?? `HTTP${res.status}`;
      let message = text;
      if (text) {
        const body = JSON.parse(text) as { error: { code: string; message: string; path: string } };
        code = body.error.code;
        message = body.error.message;
        if (typeof body.error.path !== 'string') throw new Error(`error body without a path: ${text}`);
      }
      throw new TransportError(code, message);
    }
    return res;
  }
  return {
    name: 'http',
    admin: true,
    read: async (p) => {
      const res = await call('GET', p);
      // A GET of a directory lists it; reading a file there is EISDIR, as elsewhere.
      if (res.headers.get('x-agent9-type') === 'dir') throw new TransportError('EISDIR', `${p}: is a directory`);
      return res.text();
    },
    write: async (p, d) => void (await call('PUT', p, { body: d })),
    append: async (p, d) => void (await call('POST', p, { body: d, query: 'append=1' })),
    call: async (p, d) => (await call('POST', p, { body: d })).text(),
    list: async (p) => (await (await call('GET', p, { slash: true })).json()) as { name: string; type: 'file' | 'dir'; size: number }[],
    stat: async (p) => {
      const h = (await call('HEAD', p)).headers;
      return {
        type: h.get('x-agent9-type') as 'file' | 'dir',
        size: Number(h.get('x-agent9-size')),
        version: Number(h.get('x-agent9-version')),
      };
    },
    remove: async (p) => void (await call('DELETE', p)),
    mkdir: async (p) => void (await call('PUT', p, { slash: true })),
    readStream: async (p) => (await call('GET', p)).text(),
    watch: async (p, from, n, ms = 3000) => {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), ms);
      const out: WatchedEvent[] = [];
      try {
        const res = await s.req(encodePath(p) + `?watch=1${from !== undefined ? `&from=${from}` : ''}`, { signal: ac.signal });
        if (res.status !== 200) throw new TransportError(res.headers.get('x-agent9-error') ?? 'EIO', await res.text());
        const parser = new SseParser();
        const decoder = new TextDecoder();
        const reader = res.body!.getReader();
        while (out.length < n) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const msg of parser.push(decoder.decode(value, { stream: true }))) {
            const ev = JSON.parse(msg.data) as WatchedEvent;
            if (String(ev.id) !== msg.lastEventId || ev.type !== msg.event) throw new Error(`SSE id/event do not match data: ${msg.data}`);
            out.push(ev);
          }
        }
        await reader.cancel();
      } catch (err) {
        if (!ac.signal.aborted) throw err;
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
      return out.slice(0, n);
    },
  };
}

conformance('http (plain requests)', async () => {
  const s = await fresh();
  const t = rawTransport(s);
  return { t, feed: (line) => t.write('/svc/feed-ctl', line) };
});

conformance('http (client FileService)', async () => {
  const s = await fresh();
  const client = new HttpFileService({ url: s.url, token: s.token });
  const t = serviceTransport(client, { principal: { id: 'test', admin: true } }, 'http-client');
  return { t, feed: (line) => t.write('/svc/feed-ctl', line) };
});
