/**
 * fsutil wire helpers (protocol doc §3.3–§3.5): Go `os.FileMode` bits,
 * `Packet` encoding with room for the gRPC prefix, and a decoder that does
 * not copy DATA payloads.
 *
 * @module
 */

import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { Stat } from "../gen/github.com/tonistiigi/fsutil/types/stat.ts";
import { readVarint, varintSize, writeVarint } from "./tunnel.ts";

export { Stat };

/** fsutil packet types. */
export const PacketType = { STAT: 0, REQ: 1, DATA: 2, FIN: 3, ERR: 4 } as const;

/** Go `os.FileMode` flag bits (unsigned). */
export const FileMode = {
  Dir: 0x80000000,
  Append: 0x40000000,
  Exclusive: 0x20000000,
  Temporary: 0x10000000,
  Symlink: 0x08000000,
  Device: 0x04000000,
  NamedPipe: 0x02000000,
  Socket: 0x01000000,
  Setuid: 0x00800000,
  Setgid: 0x00400000,
  CharDevice: 0x00200000,
  Sticky: 0x00100000,
  Irregular: 0x00080000,
  Perm: 0o777,
} as const;

/** Go `os.ModeType`: the bits that make an entry "not a regular file". */
export const MODE_TYPE = (FileMode.Dir | FileMode.Symlink | FileMode.NamedPipe | FileMode.Socket |
  FileMode.Device | FileMode.CharDevice | FileMode.Irregular) >>> 0;

const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_IFBLK = 0o060000;
const S_IFDIR = 0o040000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;

/** POSIX `st_mode` → Go `os.FileMode` (as Go's `os.Lstat` computes it). */
export function goFileMode(stMode: number): number {
  let mode = stMode & 0o777;
  switch (stMode & S_IFMT) {
    case S_IFBLK:
      mode |= FileMode.Device;
      break;
    case S_IFCHR:
      mode |= FileMode.Device | FileMode.CharDevice;
      break;
    case S_IFDIR:
      mode |= FileMode.Dir;
      break;
    case S_IFIFO:
      mode |= FileMode.NamedPipe;
      break;
    case S_IFLNK:
      mode |= FileMode.Symlink;
      break;
    case S_IFSOCK:
      mode |= FileMode.Socket;
      break;
    case S_IFREG:
      break;
  }
  if (stMode & 0o4000) mode |= FileMode.Setuid;
  if (stMode & 0o2000) mode |= FileMode.Setgid;
  if (stMode & 0o1000) mode |= FileMode.Sticky;
  return mode >>> 0;
}

/** Go `os.FileMode` → POSIX permission bits for chmod (perm + setuid/setgid/sticky). */
export function posixPermBits(mode: number): number {
  let m = mode & 0o777;
  if (mode & FileMode.Setuid) m |= 0o4000;
  if (mode & FileMode.Setgid) m |= 0o2000;
  if (mode & FileMode.Sticky) m |= 0o1000;
  return m;
}

/** Whether data can be requested for an entry of this mode (no type bits). */
export function canRequestData(mode: number): boolean {
  return ((mode >>> 0) & MODE_TYPE) === 0;
}

/** Whether the mode is a directory. */
export function isDirMode(mode: number): boolean {
  return ((mode >>> 0) & FileMode.Dir) !== 0;
}

/** Whether the mode is a symlink. */
export function isSymlinkMode(mode: number): boolean {
  return ((mode >>> 0) & FileMode.Symlink) !== 0;
}

/** Bytes reserved in front of a packet for the gRPC message prefix. */
export const GRPC_PREFIX = 5;

/** A packet encoded after 5 reserved bytes, ready for `ServerCall.sendFramed`. */
function framed(encode: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter();
  encode(w);
  const body = w.finish();
  const out = new Uint8Array(GRPC_PREFIX + body.length);
  out.set(body, GRPC_PREFIX);
  return out;
}

/** STAT packet (framed). `stat` undefined = end of the STAT list (empty message). */
export function statPacket(stat: Stat | undefined): Uint8Array {
  if (!stat) return new Uint8Array(GRPC_PREFIX);
  return framed((w) => {
    Stat.encode(stat, w.uint32(18).fork()).join();
  });
}

/** REQ / FIN / ERR / empty DATA packets (framed). */
export function controlPacket(type: number, id = 0, data?: Uint8Array): Uint8Array {
  return framed((w) => {
    if (type !== 0) w.uint32(8).int32(type);
    if (id !== 0) w.uint32(24).uint32(id);
    if (data && data.length) w.uint32(34).bytes(data);
  });
}

/** Largest header of a DATA packet: type (2) + ID (1+5) + data tag/len (1+5). */
export const DATA_HEADER_MAX = 14;

/**
 * Encodes a DATA packet in place: `buf[DATA_OFFSET, DATA_OFFSET+n)` already
 * holds the payload; writes the packet header right before it and returns
 * the framed subarray (gRPC prefix reserved in front).
 */
export const DATA_OFFSET = GRPC_PREFIX + DATA_HEADER_MAX;

/** Returns the framed DATA packet whose payload sits at `buf[DATA_OFFSET..+n)`. */
export function frameDataInPlace(buf: Uint8Array, id: number, n: number): Uint8Array {
  const headerLen = 2 + (id !== 0 ? 1 + varintSize(id) : 0) + (n > 0 ? 1 + varintSize(n) : 0);
  const start = DATA_OFFSET - headerLen;
  let pos = start;
  buf[pos++] = 0x08;
  buf[pos++] = PacketType.DATA;
  if (id !== 0) {
    buf[pos++] = 0x18;
    pos = writeVarint(buf, pos, id);
  }
  if (n > 0) {
    buf[pos++] = 0x22;
    pos = writeVarint(buf, pos, n);
  }
  return buf.subarray(start - GRPC_PREFIX, DATA_OFFSET + n);
}

/** A decoded packet; `data` is a view into the received message. */
export interface WirePacket {
  type: number;
  id: number;
  stat: Stat | undefined;
  data: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Decodes an fsutil `Packet` without copying `data`. */
export function decodePacket(buf: Uint8Array): WirePacket {
  const p: WirePacket = { type: 0, id: 0, stat: undefined, data: EMPTY };
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      pos = p2;
      if (field === 1) p.type = v;
      else if (field === 3) p.id = v >>> 0;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      pos = p2;
      const body = buf.subarray(pos, pos + len);
      pos += len;
      if (field === 2) p.stat = Stat.decode(new BinaryReader(body));
      else if (field === 4) p.data = body;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`cannot decode fsutil packet: wire type ${wire}`);
    }
  }
  return p;
}
