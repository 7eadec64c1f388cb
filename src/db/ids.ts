// Time-ordered UUIDs (RFC 9562 version 7), generated here so every table orders by id alone and a
// cursor is just the last id seen. Postgres < 18 has no uuidv7().
import { randomFillSync } from 'node:crypto';

// Random bytes drawn from a pool refilled 4 KB at a time: one system call per 256 ids, not two per id.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function random16(): Buffer {
  if (poolOffset + 16 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = Buffer.allocUnsafe(16);
  pool.copy(bytes, 0, poolOffset, poolOffset + 16);
  poolOffset += 16;
  return bytes;
}

let lastMs = 0;
let counter = 0;

export function uuidv7(): string {
  const bytes = random16();
  let now = Date.now();
  // Monotonic within a process: ids created in the same millisecond still sort in creation order.
  if (now <= lastMs) {
    counter = (counter + 1) & 0xfff;
    if (counter === 0) lastMs += 1;
    now = lastMs;
  } else {
    // A random start in each millisecond (bytes 6-7 are overwritten below).
    counter = bytes.readUInt16BE(6) & 0x7ff;
    lastMs = now;
  }
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
