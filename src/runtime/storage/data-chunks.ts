/**
 * The content of data files: fixed-size chunks keyed by node id, so an offset write touches only the
 * chunks it covers and a rename (or a second name) moves no data. Chunk 0 lives in the node row itself
 * (`head`), so a small file is one row. Every method runs inside the caller's transaction.
 */
import { EMPTY } from '../../fs/bytes.js';
import type { Db } from './db.js';

/** What the chunk code needs of a node: where its content is and how long it is. */
export interface Extent {
  id: number;
  size: number;
}

export class DataChunks {
  private readonly q;

  constructor(
    db: Db,
    readonly chunkSize: number,
  ) {
    this.q = {
      head: db.prepare('SELECT head FROM data_nodes WHERE id = ?').pluck(),
      setHead: db.prepare('UPDATE data_nodes SET head = ? WHERE id = ?'),
      chunk: db.prepare('SELECT data FROM data_chunks WHERE node = ? AND idx = ?').pluck(),
      chunkRange: db.prepare('SELECT idx, data FROM data_chunks WHERE node = ? AND idx BETWEEN ? AND ? ORDER BY idx'),
      putChunk: db.prepare('INSERT OR REPLACE INTO data_chunks (node, idx, data) VALUES (?, ?, ?)'),
      dropChunksFrom: db.prepare('DELETE FROM data_chunks WHERE node = ? AND idx >= ?'),
    };
  }

  get(id: number, idx: number): Uint8Array | undefined {
    return ((idx === 0 ? this.q.head.get(id) : this.q.chunk.get(id, idx)) ?? undefined) as Uint8Array | undefined;
  }

  put(id: number, idx: number, data: Uint8Array): void {
    if (idx === 0) this.q.setHead.run(data, id);
    else this.q.putChunk.run(id, idx, data);
  }

  /** Drops chunk `idx` and every one after it (0: the head too). */
  dropFrom(id: number, idx: number): void {
    if (idx === 0) this.q.setHead.run(null, id);
    this.q.dropChunksFrom.run(id, Math.max(1, idx));
  }

  /** Drops the chunks of a node whose row goes (the head goes with the row). */
  dropRows(id: number): void {
    this.q.dropChunksFrom.run(id, 1);
  }

  readRange(node: Extent, offset: number, length: number): Uint8Array {
    const id = node.id;
    const end = Math.min(node.size, offset + length);
    if (offset >= end) return EMPTY;
    const C = this.chunkSize;
    const first = Math.floor(offset / C);
    if (first === Math.floor((end - 1) / C)) {
      // Within one chunk: the chunk's own bytes, no copy.
      const data = this.get(id, first);
      const from = offset - first * C;
      const want = end - offset;
      if (data && data.length >= from + want) return data.subarray(from, from + want);
    }
    // Not zeroed: readRangeInto writes every byte (zeros only in the gaps).
    const out = Buffer.allocUnsafe(end - offset);
    this.readRangeInto(node, offset, out);
    return out;
  }

  /**
   * Copies the file's bytes from `offset` into `target` (as many as fit and exist) and returns how many.
   * Chunks arrive in order; only the gaps between them (holes, short chunks) are zeroed.
   */
  readRangeInto(node: Extent, offset: number, target: Uint8Array): number {
    const id = node.id;
    const end = Math.min(node.size, offset + target.length);
    if (offset >= end) return 0;
    const n = end - offset;
    const C = this.chunkSize;
    const first = Math.floor(offset / C);
    const last = Math.floor((end - 1) / C);
    let filled = 0;
    const place = (idx: number, data: Uint8Array) => {
      const chunkStart = idx * C;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + data.length);
      if (to <= from) return;
      if (from - offset > filled) target.fill(0, filled, from - offset);
      target.set(data.subarray(from - chunkStart, to - chunkStart), from - offset);
      filled = to - offset;
    };
    if (first === 0) {
      const head = this.get(id, 0);
      if (head) place(0, head);
    }
    if (last >= 1) {
      for (const row of this.q.chunkRange.iterate(id, Math.max(1, first), last) as Iterable<{ idx: number; data: Uint8Array }>) {
        place(row.idx, row.data);
      }
    }
    if (filled < n) target.fill(0, filled, n);
    return n;
  }

  /** Writes bytes at `at` into the chunks they cover (`fresh`: the node has no content yet). */
  write(id: number, at: number, data: Uint8Array, fresh = false): void {
    const C = this.chunkSize;
    let pos = 0;
    while (pos < data.length) {
      const abs = at + pos;
      const idx = Math.floor(abs / C);
      const within = abs - idx * C;
      const take = Math.min(C - within, data.length - pos);
      const piece = data.subarray(pos, pos + take);
      if ((within === 0 && take === C) || (fresh && within === 0)) {
        this.put(id, idx, piece);
      } else {
        const old = fresh ? undefined : this.get(id, idx);
        const merged = new Uint8Array(Math.max(old?.length ?? 0, within + take));
        if (old) merged.set(old);
        merged.set(piece, within);
        this.put(id, idx, merged);
      }
      pos += take;
    }
  }

  /** Cuts a file's chunks down to `size`. */
  cut(node: Extent, size: number): void {
    if (size >= node.size) return;
    const C = this.chunkSize;
    const keep = Math.ceil(size / C);
    this.dropFrom(node.id, keep);
    const lastLen = size - (keep - 1) * C;
    if (keep > 0 && lastLen < C) {
      const last = this.get(node.id, keep - 1);
      if (last && last.length > lastLen) this.put(node.id, keep - 1, last.subarray(0, lastLen));
    }
  }
}
