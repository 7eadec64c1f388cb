// Is a body one JSON text (RFC 8259)? Ingest only needs the verdict, and answering it with
// JSON.parse(body.toString()) builds a string the size of the body and then every value in it:
// for large deliveries, the largest allocations of the request. This walks the bytes once and
// allocates nothing but a stack of open containers.
//
// Same verdict as JSON.parse(bytes.toString('utf8')): bytes of 0x80 and above are accepted
// inside strings (where a UTF-8 decoder would put them, or U+FFFD for broken sequences) and
// refused anywhere else, as the characters they decode to would be.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;
const isHex = (c: number | undefined) => c !== undefined && ((c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66));
/** The characters that may follow a backslash, besides u: " \ / b f n r t. */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const LITERALS = [Buffer.from('true'), Buffer.from('false'), Buffer.from('null')];

function skipWhitespace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** The index after the string that opens at `i`, or -1. */
function skipString(bytes: Uint8Array, i: number): number {
  for (i++; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      const escaped = bytes[i + 1];
      if (escaped === 0x75) {
        if (!(isHex(bytes[i + 2]) && isHex(bytes[i + 3]) && isHex(bytes[i + 4]) && isHex(bytes[i + 5]))) return -1;
        i += 5;
      } else if (escaped !== undefined && SIMPLE_ESCAPES.has(escaped)) {
        i += 1;
      } else {
        return -1;
      }
    }
  }
  return -1;
}

function skipDigits(bytes: Uint8Array, i: number): number {
  while (isDigit(bytes[i])) i++;
  return i;
}

/** The index after the number that starts at `i`, or -1. */
function skipNumber(bytes: Uint8Array, i: number): number {
  if (bytes[i] === MINUS) i++;
  if (bytes[i] === 0x30) i++;
  else if (isDigit(bytes[i])) i = skipDigits(bytes, i);
  else return -1;
  if (bytes[i] === DOT) {
    if (!isDigit(bytes[i + 1])) return -1;
    i = skipDigits(bytes, i + 1);
  }
  if ((bytes[i]! | 0x20) === 0x65) {
    i++;
    if (bytes[i] === PLUS || bytes[i] === MINUS) i++;
    if (!isDigit(bytes[i])) return -1;
    i = skipDigits(bytes, i);
  }
  return i;
}

function skipLiteral(bytes: Uint8Array, i: number): number {
  for (const literal of LITERALS) {
    if (bytes[i] === literal[0]) {
      for (let k = 1; k < literal.length; k++) if (bytes[i + k] !== literal[k]) return -1;
      return i + literal.length;
    }
  }
  return -1;
}

/** true when `bytes` hold exactly one JSON value, with optional whitespace around it. */
export function isJsonText(bytes: Uint8Array): boolean {
  const open: number[] = []; // CLOSE_OBJECT or CLOSE_ARRAY, innermost last
  let i = skipWhitespace(bytes, 0);
  let expectKey = false;
  for (;;) {
    // A value (or, in an object, a key and its colon, then a value).
    if (expectKey) {
      const keyEnd = bytes[i] === QUOTE ? skipString(bytes, i) : -1;
      if (keyEnd < 0) return false;
      i = skipWhitespace(bytes, keyEnd);
      if (bytes[i] !== COLON) return false;
      i = skipWhitespace(bytes, i + 1);
      expectKey = false;
    }
    const c = bytes[i];
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      i = skipWhitespace(bytes, i + 1);
      if (bytes[i] === close) {
        i++;
      } else {
        open.push(close);
        expectKey = close === CLOSE_OBJECT;
        continue;
      }
    } else {
      const end = c === QUOTE ? skipString(bytes, i) : c === MINUS || isDigit(c) ? skipNumber(bytes, i) : skipLiteral(bytes, i);
      if (end < 0) return false;
      i = end;
    }
    // After a value: a comma and the next one, or close containers, or the end.
    for (;;) {
      i = skipWhitespace(bytes, i);
      if (open.length === 0) return i === bytes.length;
      if (bytes[i] === COMMA) {
        i = skipWhitespace(bytes, i + 1);
        expectKey = open[open.length - 1] === CLOSE_OBJECT;
        break;
      }
      if (bytes[i] !== open[open.length - 1]) return false;
      open.pop();
      i++;
    }
  }
}
