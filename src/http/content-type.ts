/**
 * Content-Type of a file: from its name when the extension says, else from its content
 * (JSON, UTF-8 text, or bytes), or the media type the service gives (a stream of JSON lines). Views
 * and call answers are JSON or text; data files are whatever was written. Content over 64 KiB (one
 * stored chunk) is judged by its first 64 KiB, so that a HEAD, which reads no more than that, names
 * the type a GET sends and costs one chunk however large the file.
 */
import { isUtf8 } from 'node:buffer';

const BY_EXTENSION: Record<string, string> = {
  json: 'application/json; charset=utf-8',
  jsonl: 'application/x-ndjson; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  pdf: 'application/pdf',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  zip: 'application/zip',
  wasm: 'application/wasm',
};

export const TEXT = 'text/plain; charset=utf-8';
export const JSON_TYPE = 'application/json; charset=utf-8';
const BINARY = 'application/octet-stream';
/** Content larger than this is not parsed to decide whether it is JSON, and is judged by this much of it. */
const JSON_SNIFF_LIMIT = 64 * 1024;

function byName(path: string): string | undefined {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  if (dot <= slash + 1) return undefined;
  return BY_EXTENSION[path.slice(dot + 1).toLowerCase()];
}

function firstNonSpace(bytes: Uint8Array): number {
  for (const b of bytes) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return b;
  return -1;
}

/** A prefix cut anywhere, without the UTF-8 sequence the cut may have left incomplete at its end. */
function wholeSequences(prefix: Uint8Array): Uint8Array {
  let lead = prefix.length - 1;
  while (lead >= 0 && prefix.length - lead <= 3 && (prefix[lead]! & 0xc0) === 0x80) lead--;
  if (lead < 0) return prefix;
  const b = prefix[lead]!;
  const needs = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return prefix.length - lead < needs ? prefix.subarray(0, lead) : prefix;
}

/** The most of a file's content contentTypeOf looks at (a HEAD reads this much). */
export const SNIFF_BYTES = JSON_SNIFF_LIMIT;

/** Whether contentTypeOf needs the content at all (not for a known extension or a given media type). */
export function typedWithoutContent(path: string, mediaType?: string): boolean {
  return byName(path) !== undefined || mediaType !== undefined;
}

/**
 * The Content-Type of `path`: by its name, else the media type its stat gives, else by its content.
 * `bytes` may be the first SNIFF_BYTES of a larger file of `size` bytes.
 */
export function contentTypeOf(path: string, bytes: Uint8Array, size = bytes.length, mediaType?: string): string {
  const named = byName(path);
  if (named) return named;
  if (mediaType !== undefined) return mediaType;
  if (size === 0) return TEXT;
  if (size > JSON_SNIFF_LIMIT) return isUtf8(wholeSequences(bytes.subarray(0, JSON_SNIFF_LIMIT))) ? TEXT : BINARY;
  if (!isUtf8(bytes)) return BINARY;
  const first = firstNonSpace(bytes);
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) {
    try {
      JSON.parse(new TextDecoder().decode(bytes));
      return JSON_TYPE;
    } catch {
      /* text that merely starts like JSON */
    }
  }
  return TEXT;
}
