/**
 * A server-sent-events parser (the WHATWG event-stream grammar): feed it text as it arrives, get
 * messages out. A frame with an `id:` but no data updates the last event id without dispatching,
 * as EventSource does.
 */
export interface SseMessage {
  event: string;
  data: string;
  /** The last event id after this message (carried over from earlier frames when it had none). */
  lastEventId: string;
}

export class SseParser {
  lastEventId = '';
  /** The reconnection delay the server asked for with `retry:`. */
  retryMs: number | undefined;
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private pendingId: string | undefined;

  /** Parses complete lines of `chunk` (plus what was left over) and returns the messages they finish. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    let start = 0;
    for (;;) {
      const nl = this.nextBreak(start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private nextBreak(from: number): number {
    const n = this.buffer.indexOf('\n', from);
    const r = this.buffer.indexOf('\r', from);
    // A lone CR also ends a line, but only when we can see it is not followed by LF.
    if (r >= 0 && (n < 0 || r < n - 1) && r + 1 < this.buffer.length && this.buffer[r + 1] !== '\n') return r;
    return n;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.pendingId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    if (this.pendingId !== undefined) this.lastEventId = this.pendingId;
    this.pendingId = undefined;
    const event = this.event || 'message';
    const data = this.data;
    this.event = '';
    this.data = [];
    if (data.length === 0) return undefined;
    return { event, data: data.join('\n'), lastEventId: this.lastEventId };
  }
}
