/**
 * A base backup part's tar stream, read synchronously as its bytes arrive: each entry's header,
 * then its data as views into the very chunk pushed, which the visitor uses (checksums, writes)
 * before push() returns. So the restore keeps no reference to a chunk once it is pushed, and the
 * decompressor can write the next chunk into the same memory (part-jobs.ts): fresh memory for
 * every mebibyte restored cost page faults on a par with zstd's own work (perf, 1.1 GB restore).
 *
 * It reads what part-stream.ts writes with tar-stream's pack, and nothing more: POSIX ustar (or
 * GNU-magic) headers, with pax extended headers ('x') for long names and the archiver's own
 * keywords (PGWA.offset, PGWA.size, PGWA.delta). Any other header type is handed to the visitor as
 * it is, for it to refuse; GNU long names and global pax headers are refused here. Every failure
 * of the format is a CorruptObjectError naming the part: "is damaged: its tar stream cannot be
 * read (...)".
 */
import { CorruptObjectError } from '../errors';

export const TAR_BLOCK = 512;

export interface TarEntry {
  /** The entry's path: pax `path`, else the ustar prefix and name. */
  readonly name: string;
  /** 'file' ('0' or NUL), 'directory' ('5'), 'symlink'... (TYPE_NAMES), else `type "X"`. */
  readonly type: string;
  /** Bytes of data: pax `size`, else the header's. */
  readonly size: number;
  readonly mode: number;
  /** Seconds since the epoch. */
  readonly mtime: number;
  /** The entry's pax keywords (empty without an extended header). */
  readonly pax: Readonly<Record<string, string>>;
}

export interface TarVisitor {
  /** An entry starts; its data follows in data() calls, then entryEnd(). */
  entry(entry: TarEntry): void;
  /** Some of the current entry's data: a view into the pushed chunk, to be used before returning. */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

/** tar-stream's names for the header types (part-stream.ts writes files and directories only). */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  '0': 'file',
  '\0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

/** Longest pax extended header accepted: the archiver's are a few hundred bytes. */
const MAX_PAX_SIZE = 1024 * 1024;

type State =
  | { readonly kind: 'header' }
  | { readonly kind: 'pax'; remaining: number; readonly bytes: Buffer[] }
  /** `padding`: the zeros after the data, up to the next block, skipped once it is read. */
  | { readonly kind: 'data'; remaining: number; readonly padding: number }
  | { readonly kind: 'padding'; remaining: number }
  /** After the first zero block: only zeros may follow. */
  | { readonly kind: 'end' };

export class TarReader {
  private state: State = { kind: 'header' };
  private readonly header = Buffer.alloc(TAR_BLOCK);
  private headerFilled = 0;
  /** The keywords of the extended headers read since the last entry: they apply to the next. */
  private pax: Record<string, string> = {};

  constructor(
    private readonly visitor: TarVisitor,
    /** Names the part in errors. */
    private readonly what: string,
  ) {}

  /** Reads `chunk`; what the visitor throws passes through as it is. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const state = this.state;
      const available = chunk.length - at;
      switch (state.kind) {
        case 'header': {
          const take = Math.min(available, TAR_BLOCK - this.headerFilled);
          chunk.copy(this.header, this.headerFilled, at, at + take);
          this.headerFilled += take;
          at += take;
          if (this.headerFilled === TAR_BLOCK) {
            this.headerFilled = 0;
            this.readHeader();
          }
          break;
        }
        case 'data': {
          const take = Math.min(available, state.remaining);
          state.remaining -= take;
          // A view, never a copy: the visitor writes it out before this returns.
          this.visitor.data(chunk.subarray(at, at + take));
          at += take;
          if (state.remaining === 0) this.finishEntry(state.padding);
          break;
        }
        case 'pax': {
          const take = Math.min(available, state.remaining);
          state.bytes.push(Buffer.from(chunk.subarray(at, at + take))); // kept past this push: a copy
          state.remaining -= take;
          at += take;
          if (state.remaining === 0) {
            const bytes = Buffer.concat(state.bytes);
            this.pax = { ...this.pax, ...this.parsePax(bytes) };
            this.skipPadding(padding(bytes.length));
          }
          break;
        }
        case 'padding': {
          const take = Math.min(available, state.remaining);
          state.remaining -= take;
          at += take;
          if (state.remaining === 0) this.state = { kind: 'header' };
          break;
        }
        case 'end': {
          if (chunk.subarray(at).some((byte) => byte !== 0)) throw this.damaged('bytes follow the end-of-archive marker');
          at = chunk.length;
          break;
        }
      }
    }
  }

  /** The stream is over: it must have ended between entries, with the end-of-archive marker. */
  end(): void {
    const state = this.state;
    if (state.kind === 'end') return;
    if (state.kind === 'header' && this.headerFilled === 0) throw this.damaged('it ends without the end-of-archive marker');
    throw this.damaged(state.kind === 'header' ? 'it ends inside a header' : 'it ends inside an entry');
  }

  private readHeader(): void {
    const block = this.header;
    if (block.every((byte) => byte === 0)) {
      if (Object.keys(this.pax).length > 0) throw this.damaged('an extended header is followed by the end of the archive');
      this.state = { kind: 'end' };
      return;
    }
    if (!checksumMatches(block)) throw this.damaged('a header fails its checksum');
    const magic = block.toString('latin1', 257, 263);
    if (magic !== 'ustar\0' && magic !== 'ustar ') throw this.damaged(`a header has the format ${JSON.stringify(magic)}, not ustar`);
    const flag = block.toString('latin1', 156, 157);
    const size = this.number(block, 124, 12, 'size');
    if (flag === 'x') {
      if (size > MAX_PAX_SIZE) throw this.damaged(`an extended header of ${size} bytes`);
      if (size === 0) return; // an empty one: the next header follows
      this.state = { kind: 'pax', remaining: size, bytes: [] };
      return;
    }
    if (flag === 'g' || flag === 'L' || flag === 'K') throw this.damaged(`a header of type ${JSON.stringify(flag)}, which the archiver never writes`);
    const pax = this.pax;
    this.pax = {};
    const prefix = text(block, 345, 155);
    const name = pax.path ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    const entrySize = pax.size === undefined ? size : this.paxNumber(pax.size, 'size');
    const type = TYPE_NAMES[flag] ?? `type ${JSON.stringify(flag)}`;
    const entry: TarEntry = { name, type, size: entrySize, mode: this.number(block, 100, 8, 'mode'), mtime: pax.mtime === undefined ? this.number(block, 136, 12, 'mtime') : Math.floor(this.paxNumber(pax.mtime, 'mtime')), pax };
    this.visitor.entry(entry);
    if (entrySize === 0) this.finishEntry(0);
    else this.state = { kind: 'data', remaining: entrySize, padding: padding(entrySize) };
  }

  /** The data of an entry is complete: the visitor hears it, then its padding is skipped. */
  private finishEntry(rest: number): void {
    this.visitor.entryEnd();
    this.skipPadding(rest);
  }

  private skipPadding(rest: number): void {
    this.state = rest === 0 ? { kind: 'header' } : { kind: 'padding', remaining: rest };
  }

  /** pax records: "LENGTH keyword=value\n", LENGTH counting the whole record. */
  private parsePax(bytes: Buffer): Record<string, string> {
    const records: Record<string, string> = {};
    let at = 0;
    while (at < bytes.length) {
      const space = bytes.indexOf(0x20, at);
      const length = space === -1 ? NaN : Number(bytes.toString('latin1', at, space));
      if (!Number.isSafeInteger(length) || length <= space - at + 1 || at + length > bytes.length || bytes[at + length - 1] !== 0x0a) {
        if (bytes.subarray(at).every((byte) => byte === 0)) break; // padding some writers leave
        throw this.damaged('an extended header holds a malformed record');
      }
      const record = bytes.toString('utf8', space + 1, at + length - 1);
      const equals = record.indexOf('=');
      if (equals <= 0) throw this.damaged('an extended header holds a record without a keyword');
      records[record.slice(0, equals)] = record.slice(equals + 1);
      at += length;
    }
    return records;
  }

  /** A numeric header field: octal text, or base-256 (high bit set) for values too large for it. */
  private number(block: Buffer, offset: number, length: number, field: string): number {
    const bytes = block.subarray(offset, offset + length);
    if (bytes[0] & 0x80) {
      if (bytes[0] !== 0x80) throw this.damaged(`a header's ${field} is a negative or oversized binary number`);
      let value = 0;
      for (let i = 1; i < bytes.length; i++) value = value * 256 + bytes[i];
      if (!Number.isSafeInteger(value)) throw this.damaged(`a header's ${field} is too large`);
      return value;
    }
    const digits = bytes.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ ]+/, '');
    if (digits === '') return 0;
    if (!/^[0-7]+$/.test(digits)) throw this.damaged(`a header's ${field} is not an octal number (${JSON.stringify(digits)})`);
    return parseInt(digits, 8);
  }

  private paxNumber(value: string, keyword: string): number {
    const number = Number(value);
    if (value.trim() === '' || !Number.isFinite(number) || number < 0) throw this.damaged(`an extended header's ${keyword} is ${JSON.stringify(value)}`);
    return number;
  }

  private damaged(reason: string): CorruptObjectError {
    return new CorruptObjectError(`${this.what} is damaged: its tar stream cannot be read (${reason})`);
  }
}

/** Bytes of zero padding after `size` bytes of data, up to the next block. */
function padding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

/** A NUL-terminated text field. */
function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return field.toString('utf8', 0, nul === -1 ? length : nul);
}

/** The header's checksum: the sum of its bytes with the checksum field read as spaces (unsigned, or signed as old writers did). */
function checksumMatches(block: Buffer): boolean {
  const field = block.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const recorded = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return recorded === unsigned || recorded === signed;
}
