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
