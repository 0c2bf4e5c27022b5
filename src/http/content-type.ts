/**
 * Content-Type of a file: from its name when the extension says, else from its content
 * (JSON, UTF-8 text, or bytes). Views and call answers are JSON or text; data files are whatever was written.
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
/** Content larger than this is not parsed to decide whether it is JSON. */
const JSON_SNIFF_LIMIT = 1024 * 1024;

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

export function contentTypeOf(path: string, bytes: Uint8Array): string {
  const named = byName(path);
  if (named) return named;
  if (bytes.length === 0) return TEXT;
  if (!isUtf8(bytes)) return BINARY;
  const first = firstNonSpace(bytes);
  if ((first === 0x7b /* { */ || first === 0x5b) /* [ */ && bytes.length <= JSON_SNIFF_LIMIT) {
    try {
      JSON.parse(new TextDecoder().decode(bytes));
      return JSON_TYPE;
    } catch {
      /* text that merely starts like JSON */
    }
  }
  return TEXT;
}
