import { describe, expect, it } from 'vitest';
import { normalizePath, isUnder, joinPath, parentOf, relativeTo } from '../../src/fs/paths.js';
import { FsError, ERROR_TABLE } from '../../src/fs/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as FsError).code;
  }
  return undefined;
}

describe('paths', () => {
  it('normalises', () => {
    expect(normalizePath('/')).toBe('/');
    expect(normalizePath('//a///b/')).toBe('/a/b');
    expect(normalizePath('/a/b/')).toBe('/a/b');
    expect(normalizePath('//')).toBe('/');
    expect(normalizePath('/a//b')).toBe('/a/b');
    expect(normalizePath('/.hidden/..x/x..')).toBe('/.hidden/..x/x..');
    expect(normalizePath('/a/b.c/d')).toBe('/a/b.c/d');
  });

  it('the fast path for normal paths rejects what the full check rejects', () => {
    for (const bad of ['/.', '/..', '/a/.', '/a/..', '/./a', '/../a', '/a\0', '', 'a', '/a/' + '\0', '/a\nb', '/x\u0001', '/d\u007f', '/\t']) {
      expect(codeOf(() => normalizePath(bad)), JSON.stringify(bad)).toBe('EINVAL');
    }
    expect(codeOf(() => normalizePath('/' + 'x'.repeat(64) + 'é'.repeat(100)))).toBe('ENAMETOOLONG');
  });

  it('rejects bad paths with EINVAL or ENAMETOOLONG, naming the path', () => {
    expect(codeOf(() => normalizePath('a/b'))).toBe('EINVAL');
    expect(codeOf(() => normalizePath('/a/../b'))).toBe('EINVAL');
    expect(codeOf(() => normalizePath('/a/./b'))).toBe('EINVAL');
    expect(codeOf(() => normalizePath('/a\0b'))).toBe('EINVAL');
    expect(codeOf(() => normalizePath('/' + 'x'.repeat(256)))).toBe('ENAMETOOLONG');
    expect(codeOf(() => normalizePath('/' + 'é'.repeat(128)))).toBe('ENAMETOOLONG'); // 256 bytes
    expect(normalizePath('/' + 'x'.repeat(255))).toHaveLength(256);
    expect(codeOf(() => normalizePath(('/' + 'x'.repeat(200)).repeat(41)))).toBe('ENAMETOOLONG'); // 8241 bytes: over a namespace's 8192
    expect(normalizePath(('/' + 'x'.repeat(200)).repeat(21))).toHaveLength(4221); // a data tree's 4096 counts from its own root
    try {
      normalizePath('/a/../etc/passwd');
    } catch (e) {
      expect((e as Error).message).toContain('/a/../etc/passwd');
    }
  });

  it('matches prefixes on segment boundaries only', () => {
    expect(isUnder('/goals', '/goals')).toBe(true);
    expect(isUnder('/goals/a', '/goals')).toBe(true);
    expect(isUnder('/goalsX', '/goals')).toBe(false);
    expect(isUnder('/anything', '/')).toBe(true);
    expect(relativeTo('/goals/a', '/goals')).toBe('/a');
    expect(relativeTo('/goals', '/goals')).toBe('/');
    expect(joinPath('/', 'a', 'b')).toBe('/a/b');
    expect(parentOf('/a/b')).toBe('/a');
    expect(parentOf('/a')).toBe('/');
  });

  it('maps every error code once to errno, HTTP status and exit code', () => {
    const exits = new Set<number>();
    for (const [code, m] of Object.entries(ERROR_TABLE)) {
      expect(m.errno, code).toBeGreaterThan(0);
      expect(m.http, code).toBeGreaterThanOrEqual(400);
      expect(exits.has(m.exit), `exit code of ${code} is unique`).toBe(false);
      exits.add(m.exit);
    }
    expect(ERROR_TABLE.ENOENT.http).toBe(404);
    expect(ERROR_TABLE.EDQUOT.http).toBe(402);
    expect(ERROR_TABLE.EAGAIN.http).toBe(429);
    expect(ERROR_TABLE.ESTALE.http).toBe(412);
    const err = new FsError('EAGAIN', '/agents/bob/inbox', 'queue full');
    expect(err.message).toBe('/agents/bob/inbox: queue full');
    expect(err.toJSON()).toEqual({ code: 'EAGAIN', message: '/agents/bob/inbox: queue full', path: '/agents/bob/inbox' });
  });
});
