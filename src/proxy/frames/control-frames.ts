import { randomFillSync } from 'node:crypto';

/**
 * The few frames the proxy writes itself (RFC 6455 §5.5): close, ping (and any
 * frame, for the probe's client side). Toward
 * a backend the proxy speaks as a client, so its frames are masked (§5.3);
 * toward a client they are not.
 */

const OP_CLOSE = 0x8;
const OP_PING = 0x9;

/** Close codes the proxy sends (RFC 6455 §7.4.1, IANA registry). */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_MESSAGE_TOO_BIG = 1009;
export const CLOSE_SERVICE_RESTART = 1012;

export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  // A control payload holds at most 125 bytes: the code and up to 123 of reason.
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return encodeFrame(OP_CLOSE, payload, masked);
}

export function pingFrame(payload: Buffer, masked: boolean): Buffer {
  return encodeFrame(OP_PING, payload, masked);
}

/** One whole frame (FIN set), with a 7-, 16- or 64-bit length; masked with a random key when asked. */
export function encodeFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const keyAt = 2 + lengthBytes;
  const payloadAt = keyAt + (masked ? 4 : 0);
  const frame = Buffer.allocUnsafe(payloadAt + length);
  frame[0] = 0x80 | opcode;
  frame[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) frame.writeUInt16BE(length, 2);
  else if (lengthBytes === 8) frame.writeBigUInt64BE(BigInt(length), 2);
  if (!masked) {
    payload.copy(frame, payloadAt);
    return frame;
  }
  randomFillSync(frame, keyAt, 4);
  for (let i = 0; i < length; i++) frame[payloadAt + i] = (payload[i] as number) ^ (frame[keyAt + (i & 3)] as number);
  return frame;
}
