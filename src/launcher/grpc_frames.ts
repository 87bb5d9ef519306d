/**
 * gRPC length-prefixed framing and a minimal protobuf wire reader, written by
 * hand so the launcher needs no npm code. Pure: no I/O, no Deno APIs.
 *
 * @module
 */

/** A malformed gRPC frame or protobuf message. */
export class WireFormatError extends Error {
  /** Always `"WireFormatError"`. */
  override name = "WireFormatError";
}

/** One gRPC message as carried on the wire: 1 flag byte, 4-byte big-endian length, payload. */
export interface GrpcFrame {
  /** The compressed-flag byte was 1. */
  compressed: boolean;
  /** The (possibly compressed) message bytes. */
  message: Uint8Array;
}

/** Size of the gRPC message prefix. */
export const GRPC_PREFIX_BYTES = 5;

/**
 * Splits a complete gRPC request or response body into its messages.
 *
 * @param body the whole body (all DATA frames concatenated)
 * @param maxMessageBytes refuse any message longer than this
 * @throws {WireFormatError} on a truncated body, an unknown flag byte or an oversized message
 */
export function parseGrpcFrames(body: Uint8Array, maxMessageBytes: number): GrpcFrame[] {
  const frames: GrpcFrame[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let off = 0;
  while (off < body.length) {
    if (body.length - off < GRPC_PREFIX_BYTES) {
      throw new WireFormatError("truncated gRPC message prefix");
    }
    const flag = body[off]!;
    if (flag > 1) throw new WireFormatError(`unknown gRPC message flag ${flag}`);
    const len = view.getUint32(off + 1, false);
    if (len > maxMessageBytes) {
      throw new WireFormatError(
        `gRPC message of ${len} bytes exceeds the limit of ${maxMessageBytes}`,
      );
    }
    off += GRPC_PREFIX_BYTES;
    if (body.length - off < len) throw new WireFormatError("truncated gRPC message");
    frames.push({ compressed: flag === 1, message: body.subarray(off, off + len) });
    off += len;
  }
  return frames;
}

/** Prefixes an uncompressed message with the gRPC 5-byte header. */
export function encodeGrpcFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(GRPC_PREFIX_BYTES + message.length);
  new DataView(out.buffer).setUint32(1, message.length, false);
  out.set(message, GRPC_PREFIX_BYTES);
  return out;
}

/** Protobuf wire types. Groups (3, 4) are rejected. */
export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** One field occurrence. `value` is a bigint for VARINT, I64 and I32, else the LEN bytes. */
export interface ProtoField {
  /** Field number. */
  field: number;
  /** Wire type (see {@linkcode WireType}). */
  wireType: number;
  /** The decoded value. */
  value: bigint | Uint8Array;
}

const MAX_FIELD_NUMBER = 2 ** 29 - 1;

function readVarint(buf: Uint8Array, off: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (off >= buf.length) throw new WireFormatError("truncated varint");
    const b = buf[off++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      if (i === 9 && b > 1) throw new WireFormatError("varint overflows 64 bits");
      return [result, off];
    }
    shift += 7n;
  }
  throw new WireFormatError("varint longer than 10 bytes");
}

/**
 * Iterates over the top-level fields of a protobuf message, in wire order.
 *
 * @throws {WireFormatError} on truncation, field number 0 or out of range, groups or unknown wire types
 */
export function* readProtoFields(buf: Uint8Array): Generator<ProtoField> {
  let off = 0;
  while (off < buf.length) {
    const [key, afterKey] = readVarint(buf, off);
    off = afterKey;
    if (key > BigInt(MAX_FIELD_NUMBER) * 8n + 7n) {
      throw new WireFormatError("field number out of range");
    }
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field === 0) throw new WireFormatError("field number 0");
    switch (wireType) {
      case WireType.VARINT: {
        const [value, next] = readVarint(buf, off);
        off = next;
        yield { field, wireType, value };
        break;
      }
      case WireType.I64: {
        if (buf.length - off < 8) throw new WireFormatError("truncated fixed64");
        const value = new DataView(buf.buffer, buf.byteOffset + off, 8).getBigUint64(0, true);
        off += 8;
        yield { field, wireType, value };
        break;
      }
      case WireType.I32: {
        if (buf.length - off < 4) throw new WireFormatError("truncated fixed32");
        const value = BigInt(new DataView(buf.buffer, buf.byteOffset + off, 4).getUint32(0, true));
        off += 4;
        yield { field, wireType, value };
        break;
      }
      case WireType.LEN: {
        const [len, next] = readVarint(buf, off);
        if (len > BigInt(buf.length - next)) {
          throw new WireFormatError("truncated length-delimited field");
        }
        off = next + Number(len);
        yield { field, wireType, value: buf.subarray(next, off) };
        break;
      }
      default:
        throw new WireFormatError(`unsupported wire type ${wireType} (field ${field})`);
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads every occurrence of a `repeated string` field (proto3 semantics:
 * occurrences concatenate). Decoding is strict: the whole message must parse,
 * the field must only appear length-delimited and be valid UTF-8.
 *
 * @throws {WireFormatError} when the message is malformed or the field is not a valid string
 */
export function readRepeatedString(message: Uint8Array, field: number): string[] {
  const out: string[] = [];
  for (const f of readProtoFields(message)) {
    if (f.field !== field) continue;
    if (f.wireType !== WireType.LEN || !(f.value instanceof Uint8Array)) {
      throw new WireFormatError(`field ${field} has wire type ${f.wireType}, expected a string`);
    }
    try {
      out.push(utf8.decode(f.value));
    } catch {
      throw new WireFormatError(`field ${field} is not valid UTF-8`);
    }
  }
  return out;
}

/**
 * Percent-encodes a grpc-message value as the gRPC HTTP/2 spec requires:
 * bytes outside printable ASCII (0x20–0x7E) and "%" become %XX of their UTF-8.
 */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(text)) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25
      ? String.fromCharCode(b)
      : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Reverses {@linkcode encodeGrpcMessage} (lenient, like grpc-go). */
export function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value.replace(/%(?![0-9a-fA-F]{2})/g, "%25"));
  } catch {
    return value;
  }
}
