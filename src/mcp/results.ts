/**
 * What MCP answers look like. A tool that fails answers an error result (`isError: true`) whose text is
 * `CODE: <path>: <what went wrong>` and whose structured content is the same `{error: {code, message,
 * path}}` an HTTP error body carries; a resource request that fails is a JSON-RPC error with that object
 * as its `data`. File content goes out as text when it is UTF-8, else base64 (a blob).
 */
import { McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { toFsError, type ErrorCode } from '../fs/errors.js';
import type { Stat } from '../fs/types.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes as text when they are valid UTF-8; undefined otherwise. */
export function asText(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A MIME type good enough for a client to choose how to show a file (JSON, text or bytes). */
export function mimeTypeOf(path: string, text: string | undefined): string {
  if (text === undefined) return 'application/octet-stream';
  if (/\.jsonl$/.test(path)) return 'application/jsonl';
  if (/\.json$/.test(path)) return 'application/json';
  const t = text.trimStart();
  if (t.startsWith('{') || t.startsWith('[')) {
    try {
      JSON.parse(text);
      return 'application/json';
    } catch {
      /* text that merely starts like JSON */
    }
  }
  return 'text/plain';
}

/** A stat as JSON, as an HTTP listing shows it (mode in octal). */
export function statJson(st: Stat, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...extra,
    type: st.type,
    kind: st.kind,
    size: st.size,
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    mtime: st.mtime,
    ctime: st.ctime,
    version: st.version,
  };
}

/** A JSON answer: the text for people and language models, the object for programs. */
export function jsonResult(value: Record<string, unknown>, text?: string): CallToolResult {
  return { content: [{ type: 'text', text: text ?? JSON.stringify(value, null, 2) }], structuredContent: value };
}

/** A failed tool call, with the POSIX code and the path it concerns. */
export function toolError(err: unknown, path: string): CallToolResult {
  const e = toFsError(err, path);
  return { isError: true, content: [{ type: 'text', text: `${e.code}: ${e.message}` }], structuredContent: { error: e.toJSON() } };
}

/** JSON-RPC error codes for resource requests: MCP's "resource not found", else invalid params or internal. */
const RESOURCE_NOT_FOUND = -32002;
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;

function rpcCodeOf(code: ErrorCode): number {
  if (code === 'ENOENT') return RESOURCE_NOT_FOUND;
  if (code === 'EIO' || code === 'EREMOTEIO') return INTERNAL_ERROR;
  return INVALID_PARAMS;
}

/** A failed resource request as a JSON-RPC error carrying `{code, message, path}` as its data. */
export function protocolError(err: unknown, path: string): McpError {
  const e = toFsError(err, path);
  return new McpError(rpcCodeOf(e.code), `${e.code}: ${e.message}`, e.toJSON());
}
