/** Byte helpers without Node's Buffer, so the core also runs in a browser. */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type Content = string | Uint8Array;

export function toBytes(content: Content): Uint8Array {
  return typeof content === 'string' ? encoder.encode(content) : content;
}

export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const size = total ?? parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Pretty JSON with a trailing newline: what views and call files answer. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export const EMPTY = new Uint8Array(0);

/**
 * A copy that shares no memory with `bytes`. (`bytes.slice()` does not do it when `bytes` is a Node
 * Buffer, whose slice is a view, and FUSE and SQLite hand us Buffers.)
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

/** A growable byte buffer for message and call files. */
export class ByteBuffer {
  private parts: Uint8Array[] = [];
  length = 0;

  append(data: Uint8Array): void {
    // Copy: the caller may reuse its buffer (FUSE does).
    this.parts.push(copyBytes(data));
    this.length += data.length;
  }

  /** The bytes so far, without taking them (the parts are joined once, so peeking again is cheap). */
  peek(): Uint8Array {
    if (this.parts.length > 1) this.parts = [concatBytes(this.parts, this.length)];
    return this.parts[0] ?? EMPTY;
  }

  take(): Uint8Array {
    const out = concatBytes(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    return out;
  }
}

/**
 * The version of a view that keeps none of its own: a 48-bit digest of its content (two 32-bit
 * multiply-xorshift lanes, as cyrb53 mixes them), never 0 (0 means "no such file" to a precondition).
 * It changes whenever the content does and stays the same across restarts for the same content, so
 * an ETag built on it is safe to cache by; unlike a stored version it is not ordered.
 */
export function contentVersion(bytes: Uint8Array): number {
  let h1 = 0xdeadbeef ^ bytes.length;
  let h2 = 0x41c6ce57 ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    h1 = Math.imul(h1 ^ b, 2654435761);
    h2 = Math.imul(h2 ^ b, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const v = (h2 & 0xffff) * 0x1_0000_0000 + (h1 >>> 0);
  return v === 0 ? 1 : v;
}
