// Time-ordered UUIDs (RFC 9562 version 7), generated here so every table orders by id alone and a
// cursor is just the last id seen. Postgres < 18 has no uuidv7().
import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

export function uuidv7(): string {
  let now = Date.now();
  // Monotonic within a process: ids created in the same millisecond still sort in creation order.
  if (now <= lastMs) {
    counter = (counter + 1) & 0xfff;
    if (counter === 0) lastMs += 1;
    now = lastMs;
  } else {
    counter = randomBytes(2).readUInt16BE(0) & 0x7ff;
    lastMs = now;
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
