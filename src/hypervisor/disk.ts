/**
 * A VM's disk: `sizeBytes` long, over an optional read-only base image shared by every VM booted
 * from it; writes land in this VM's own 4 KiB chunks (copy-on-write), so the image never changes.
 * Chunks written since `startDirtyLog` are tracked, as guest RAM pages are, for live migration.
 */
export const DISK_CHUNK = 4096;
export const SECTOR = 512;

/** Chunks a VM wrote, in ascending order, and their bytes one after another (the last chunk of a disk may be shorter). */
export interface WrittenChunks { chunks: number[]; bytes: Uint8Array }

export class Disk {
  private readonly chunks = new Map<number, Uint8Array>();
  private dirty: Set<number> | null = null;

  /**
   * `base`: the image bytes (not copied; never written); the disk reads zeros past its end.
   * Raises: RangeError for a size that is not a positive multiple of SECTOR.
   */
  constructor(readonly sizeBytes: number, private readonly base: Uint8Array | null = null) {
    if (!Number.isInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR !== 0) throw new RangeError(`disk size must be a positive multiple of ${SECTOR} bytes, got ${sizeBytes}`);
  }

  /** Copies [offset, offset + dst.length) of the disk into `dst`. Raises: RangeError past the end. */
  read(offset: number, dst: Uint8Array): void {
    this.check(offset, dst.length);
    for (let i = 0; i < dst.length;) {
      const at = offset + i, c = Math.floor(at / DISK_CHUNK), o = at % DISK_CHUNK;
      const n = Math.min(dst.length - i, DISK_CHUNK - o);
      dst.set(this.chunk(c).subarray(o, o + n), i);
      i += n;
    }
  }

  /** Writes `src` at `offset` (into this VM's copy of the chunks). Raises: RangeError past the end. */
  write(offset: number, src: Uint8Array): void {
    this.check(offset, src.length);
    for (let i = 0; i < src.length;) {
      const at = offset + i, c = Math.floor(at / DISK_CHUNK), o = at % DISK_CHUNK;
      const n = Math.min(src.length - i, DISK_CHUNK - o);
      let own = this.chunks.get(c);
      if (own === undefined) { own = this.chunk(c).slice(); this.chunks.set(c, own); }
      own.set(src.subarray(i, i + n), o);
      this.dirty?.add(c);
      i += n;
    }
  }

  /** Bytes [start, end) of the current content (for downloads). */
  slice(start: number, end: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, end - start));
    this.read(start, out);
    return out;
  }

  get chunkCount(): number { return Math.ceil(this.sizeBytes / DISK_CHUNK); }

  /** Chunks that differ from the base image (this VM's writes), ascending. */
  writtenChunks(): number[] { return [...this.chunks.keys()].sort((a, b) => a - b); }

  /** The current bytes of chunk `c` (a view; do not keep it across writes). */
  chunk(c: number): Uint8Array {
    const own = this.chunks.get(c);
    if (own !== undefined) return own;
    const out = new Uint8Array(Math.min(DISK_CHUNK, this.sizeBytes - c * DISK_CHUNK));
    if (this.base !== null && c * DISK_CHUNK < this.base.length) out.set(this.base.subarray(c * DISK_CHUNK, Math.min(this.base.length, (c + 1) * DISK_CHUNK)));
    return out;
  }

  /** Replaces chunk `c` (a migration destination). Raises: RangeError for a chunk or length that does not fit. */
  setChunk(c: number, bytes: Uint8Array): void {
    if (!Number.isInteger(c) || c < 0 || c >= this.chunkCount || bytes.length !== Math.min(DISK_CHUNK, this.sizeBytes - c * DISK_CHUNK)) throw new RangeError(`disk chunk ${c} of ${bytes.length} bytes does not fit a ${this.sizeBytes}-byte disk`);
    this.chunks.set(c, bytes.slice());
  }

  /** This VM's own chunks (what it wrote over the base) as indices and their bytes, concatenated: what a stopped VM keeps. */
  exportWritten(): WrittenChunks {
    const chunks = this.writtenChunks();
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + this.chunk(c).length, 0));
    let at = 0;
    for (const c of chunks) { const b = this.chunk(c); bytes.set(b, at); at += b.length; }
    return { chunks, bytes };
  }

  /** Takes over chunks from `exportWritten` of an earlier run of the same disk. Raises: RangeError when they do not fit it. */
  importWritten(w: WrittenChunks): void {
    let at = 0;
    for (const c of w.chunks) {
      const n = Math.min(DISK_CHUNK, this.sizeBytes - c * DISK_CHUNK);
      if (!(n > 0) || at + n > w.bytes.length) throw new RangeError(`kept disk content does not fit a ${this.sizeBytes}-byte disk`);
      this.setChunk(c, w.bytes.subarray(at, at + n));
      at += n;
    }
    if (at !== w.bytes.length) throw new RangeError(`kept disk content has ${w.bytes.length - at} bytes too many`);
  }

  startDirtyLog(): void { this.dirty = new Set(); }
  /** Chunks written since the last call (or since startDirtyLog), ascending. */
  takeDirty(): number[] {
    const d = [...(this.dirty ?? [])].sort((a, b) => a - b);
    this.dirty?.clear();
    return d;
  }
  stopDirtyLog(): void { this.dirty = null; }

  private check(offset: number, len: number): void {
    if (!(offset >= 0 && len >= 0 && offset + len <= this.sizeBytes)) throw new RangeError(`disk access [${offset}, ${offset + len}) is outside the ${this.sizeBytes}-byte disk`);
  }
}
