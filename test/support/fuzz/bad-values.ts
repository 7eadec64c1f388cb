// Bad values: junk, wrong types, out-of-range and too-long values, text the API refuses to store,
// malformed and deeply nested bodies, odd content types, headers, query keys and path parameters.
import fc from 'fast-check';
import type { ParamValue } from './requests.js';
import { METADATA_MAX_JSON } from './valid-values.js';

const ODD = [
  '\u0000', '\uD800', '\uDFFF', '\u202E', '\uFEFF', '\u200B', '\u0007', 'é', 'e\u0301', '𝕏', '🧨', '\r\n', '\\', '"', "'", '%', '../',
  '<script>', "1' OR '1'='1", 'null', 'undefined', '-1', '1e309', 'NaN', '0x10', ' ', '', '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001-02-30T25:61:00Z', 'sbk_', 'sba_x_y',
  // Valid ISO 8601 that Postgres cannot store: year 0000, and past 9999 once in UTC.
  '0000-01-01T00:00:00Z', '9999-12-31T23:59:59-05:00', '9999-12-31T23:59:59.999Z',
];
const odd = fc.constantFrom(...ODD);
const huge = fc.nat({ max: 50 }).map((n) => 'x'.repeat(10_000 + n));
export const junk = fc.oneof(
  { weight: 3, arbitrary: odd },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.array(odd, { maxLength: 6 }).map((parts) => parts.join('')) },
  { weight: 1, arbitrary: huge },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.uuid() },
);
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  junk,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.oneof(odd, fc.string({ maxLength: 5 })), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);
/** Text with NUL, lone surrogates and other characters the API refuses to store. */
const oddText = fc
  .array(
    fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom('\u0000', 'x\u0000y', '\uD800', '\uDC00x', '\u202E', '\uFFFF') },
      { weight: 3, arbitrary: odd },
      { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => parts.join(''));
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: oddText },
  { weight: 1, arbitrary: fc.dictionary(oddText, fc.oneof(oddText, fc.integer()), { minKeys: 1, maxKeys: 2 }) },
  { weight: 1, arbitrary: fc.array(oddText, { maxLength: 2 }) },
);
/** Just past the schemas' limits. */
const outOfRange = fc.constantFrom<unknown>(-1, 0, 9, 101, 901, 3601, 86_401, 604_801, 1.5, 2 ** 53, '10', 'true', true, 'auto ', 'ADMIN');
const tooLong = fc.constantFrom(101, 201, 501, 1001, 2001).chain((n) => fc.constantFrom('x', '🧨', ' ').map((unit) => unit.repeat(n) + 'x'));
const tooMuchMetadata = fc.constantFrom<unknown>(
  { '': 1 },
  { ['k'.repeat(101)]: 1 },
  Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])),
  { deep: Array.from({ length: 16 }).reduce<unknown>((inner) => ({ d: inner }), 1) },
  { text: 'x'.repeat(METADATA_MAX_JSON) },
  [],
  { a: 1e400 },
);
export const badField = fc.oneof(wrongValue, oddValue, outOfRange, tooLong, tooMuchMetadata);
export const FIELDS = [
  'name', 'slug', 'role', 'expires_at', 'agent_id', 'description', 'metadata', 'enabled', 'disabled', 'signature_scheme', 'limit',
  'lease_seconds', 'grace_seconds', 'overlap_seconds', 'retry_after_seconds', 'error', 'status', 'status_detail', 'version',
  'organization_id', '__proto__', 'constructor',
];
// Objects with the API's own field names and wrong values (keys may repeat: the JSON is written by hand).
const shapedBody = fc
  .array(fc.tuple(fc.constantFrom(...FIELDS), wrongValue), { maxLength: 5 })
  .map((entries) => `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`);
// Nesting deeper than any recursive walk (JSON.stringify included) survives, in the fields that take
// free-form JSON and at the top: refused, never a stack overflow.
const deep = fc.integer({ min: 2_000, max: 12_000 }).chain((depth) =>
  fc.constantFrom(
    `{"name":"deep","metadata":{"d":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
    `{"metadata":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
    `${'['.repeat(depth)}${']'.repeat(depth)}`,
  ),
);
const malformed = fc.constantFrom('{', '{"name":', '[1,2', 'nul', '{"a":1}}', '\uFEFF{}', "{'a':1}", '{"a":1,}', '"\\ud800"', '{"a":"\\u0000"}', '1e99999', '');
export const badBody: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: shapedBody },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 2, arbitrary: malformed },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: huge.map((text) => JSON.stringify({ name: text, description: text, metadata: { text } })) },
);
export const badContentType = fc.constantFrom(
  undefined, 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'application/xml', 'application/merge-patch+json', '*/*', 'garbage', '', 'application/json, text/plain', 'application/json; charset=utf-8',
);
export const ascii = (text: string) => text.replace(/[^\x20-\x7e]/g, '?');
export const HEADER_NAMES = [
  'webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-github-delivery', 'idempotency-key', 'x-request-id', 'accept',
  'x-hub-signature-256', 'x-webhook-signature', 'origin', 'content-encoding', 'accept-encoding',
];
export const QUERY_KEYS = ['limit', 'cursor', 'status', 'redirect', 'action', 'actor_type', 'actor_id', 'since', 'until', 'code', 'state', 'error', 'scope'];
export const badParam: fc.Arbitrary<ParamValue> = fc.oneof(
  { weight: 1, arbitrary: fc.uuid().map((text) => ({ text })) },
  { weight: 3, arbitrary: junk.map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.constantFrom('%FF', '%00', '%C0%AE', '%2e%2e', '%E2%80%AE', '%', '%ZZ', '..%2F..%2Fpackage.json', '%2e%2e/%2e%2e/etc/passwd').map((raw) => ({ raw })) },
);
