import { randomFillSync } from 'node:crypto';

/**
 * The few frames the proxy writes itself (RFC 6455 §5.5): close, ping. Toward
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
  return controlFrame(OP_CLOSE, payload, masked);
}

export function pingFrame(payload: Buffer, masked: boolean): Buffer {
  return controlFrame(OP_PING, payload, masked);
}

function controlFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const headerLength = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerLength + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = (masked ? 0x80 : 0) | payload.length;
  if (!masked) {
    payload.copy(frame, 2);
    return frame;
  }
  randomFillSync(frame, 2, 4);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (frame[2 + (i & 3)] as number);
  return frame;
}
