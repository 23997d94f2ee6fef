// Old gRPC-Go clients (kubelet up to about 1.25, with grpc-go < 1.34) send the unix socket's path
// as the HTTP/2 :authority ("/var/lib/kubelet/plugins_registry/x.sock"). Node's HTTP/2 server
// (nghttp2) holds that to RFC 3986, where "/" has no place in an authority, and resets the stream
// with PROTOCOL_ERROR before grpc-js sees it: measured with kubelet 1.20.2 in test:kube, whose
// plugin watcher could not register the driver. So each connection's client-to-server bytes pass
// through this rewriter: HEADERS (and their CONTINUATION) frames are decoded with the client's
// HPACK context, an :authority that is not a valid authority becomes "localhost" (what newer
// clients send over a unix socket), and the block is sent on re-encoded as literals that never
// enter the server's dynamic table, so the two HPACK contexts cannot drift. Every other frame, and
// everything the server sends, passes untouched.
//
// Standing in front of the server, it keeps the limits the server would have kept: a frame longer
// than the frame size the server allows, or a header block beyond nghttp2's default cap, ends the
// connection before its bytes are held (without them, one connection could make the daemon hold
// hundreds of megabytes of CONTINUATION frames).
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js') as HpackModule;

interface HpackDecompressor {
  write(b: Buffer): void;
  execute(): void;
  read(): { name: string; value: string } | null;
}
interface HpackModule {
  decompressor: { create(o: { table: { size: number } }): HpackDecompressor };
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** The default SETTINGS_MAX_FRAME_SIZE (the server's): a longer frame is a connection error. */
const MAX_FRAME = 16384;
/** The most a header block (HEADERS and its CONTINUATION frames) may carry: nghttp2's default cap, 64 KiB. */
export const MAX_HEADER_BLOCK = 65536;

/** A client that broke HTTP/2's limits: its connection is closed. */
export class FrameLimitError extends Error {}
/** What RFC 3986 allows in an authority (host, port, userinfo, IP literals). */
const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

/** The client-to-server byte stream of one connection, with every :authority made acceptable. */
export class AuthorityRewriter {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private readonly hpack = hpack.decompressor.create({ table: { size: 4096 } });
  /** A header block spread over HEADERS + CONTINUATION frames, until END_HEADERS. */
  private block: { stream: number; endStream: boolean; fragments: Buffer[]; bytes: number } | undefined;
  /** How many :authority values were rewritten (for the log and the tests). */
  rewritten = 0;

  /** Feeds bytes from the client; returns the bytes to hand the server. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.pending.length < PREFACE.length) return out;
      out.push(this.pending.subarray(0, PREFACE.length));
      this.pending = this.pending.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (this.pending.length >= 9) {
      const length = this.pending.readUIntBE(0, 3);
      if (length > MAX_FRAME) throw new FrameLimitError(`a frame of ${length} bytes, over the ${MAX_FRAME} allowed`);
      if (this.pending.length < 9 + length) break;
      const frame = this.pending.subarray(0, 9 + length);
      this.pending = this.pending.subarray(9 + length);
      const type = frame[3]!;
      if (type !== HEADERS && type !== CONTINUATION) {
        out.push(frame);
        continue;
      }
      out.push(...this.headerFrame(type, frame[4]!, frame.readUInt32BE(5) & 0x7fffffff, frame.subarray(9)));
    }
    return out;
  }

  private headerFrame(type: number, flags: number, stream: number, payload: Buffer): Buffer[] {
    if (type === HEADERS) {
      let start = 0;
      let end = payload.length;
      if (flags & PADDED) {
        end -= payload[0]!;
        start = 1;
      }
      if (flags & PRIORITY) start += 5; // the priority is advice only; it is not passed on
      const first = payload.subarray(start, Math.max(start, end));
      this.block = { stream, endStream: (flags & END_STREAM) !== 0, fragments: [first], bytes: first.length };
    } else if (this.block) {
      this.block.fragments.push(payload);
      this.block.bytes += payload.length;
    } else {
      // A CONTINUATION with no HEADERS before it: the server's own checks reject it.
      return [frameOf(type, flags, stream, payload)];
    }
    if (this.block.bytes > MAX_HEADER_BLOCK) throw new FrameLimitError(`a header block of more than ${MAX_HEADER_BLOCK} bytes`);
    if (!(flags & END_HEADERS)) return [];
    const { stream: id, endStream, fragments } = this.block;
    this.block = undefined;
    return frames(id, endStream, this.rewrite(Buffer.concat(fragments)));
  }

  private rewrite(block: Buffer): Buffer {
    this.hpack.write(block);
    this.hpack.execute();
    const fields: Buffer[] = [];
    for (let h = this.hpack.read(); h !== null; h = this.hpack.read()) {
      let value = h.value;
      if (h.name === ':authority' && !AUTHORITY.test(value)) {
        value = 'localhost';
        this.rewritten++;
      }
      fields.push(literal(h.name, value));
    }
    return Buffer.concat(fields);
  }
}

/** A header field as "literal without indexing, new name", strings raw (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), integer(n.length, 7, 0), n, integer(v.length, 7, 0), v]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above it. */
function integer(n: number, prefix: number, high: number): Buffer {
  const max = (1 << prefix) - 1;
  if (n < max) return Buffer.from([high | n]);
  const bytes = [high | max];
  for (n -= max; n >= 128; n = Math.floor(n / 128)) bytes.push((n % 128) | 128);
  bytes.push(n);
  return Buffer.from(bytes);
}

function frameOf(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A header block as HEADERS and, past the frame size, CONTINUATION frames. */
function frames(stream: number, endStream: boolean, block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, first = true; first || at < block.length; first = false) {
    const piece = block.subarray(at, at + MAX_FRAME);
    at += piece.length;
    const last = at >= block.length;
    const flags = (last ? END_HEADERS : 0) | (first && endStream ? END_STREAM : 0);
    out.push(frameOf(first ? HEADERS : CONTINUATION, flags, stream, piece));
  }
  return out;
}

/** The socket as the HTTP/2 server should see it: reads rewritten, writes passed through. */
export function withAcceptableAuthority(socket: Socket, onRewrite?: () => void): Duplex {
  const rewriter = new AuthorityRewriter();
  const front = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    let more = true;
    try {
      const before = rewriter.rewritten;
      for (const b of rewriter.push(chunk)) more = front.push(b) && more;
      if (rewriter.rewritten > before) onRewrite?.();
    } catch (err) {
      // An undecodable header block, or a client past the limits: the connection is broken for both sides.
      socket.destroy();
      front.destroy(err as Error);
      return;
    }
    if (!more) socket.pause();
  });
  socket.on('end', () => front.push(null));
  socket.on('error', (err) => front.destroy(err));
  socket.on('close', () => front.destroy());
  return front;
}
