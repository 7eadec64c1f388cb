// Valid-ish values: what the validators accept and Postgres stores, at their limits and in odd unicode,
// and from them each route's valid query and body.
import fc from 'fast-check';
import { encodeCursor } from '../../../src/db/pagination.js';
import type { Ctx } from './context.js';

/** Odd but storable text: marks, overrides, combining and zero-width characters, emoji sequences, other scripts, astral and noncharacters, quoting and injection-looking text. */
const STORABLE = [
  '\u200F', '\u200E', '\u202E', '\u2067', '\u061C', 'e\u0301', 'Z\u0351\u0352\u0353\u0354', '\u0915\u094D\u0937', '👩‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷',
  '👍🏽', '\u200B', '\u200D', '\u2060', 'a\uFEFFb', '𝕏', '𠜎', '中文', 'עברית', 'مرحبا', 'ǅ', 'ß', 'İ', 'ﬃ', '\uFFFD', '\uFFFF', '\uFDD0',
  '\u{10FFFF}', '"', "'", '\\', '%', '%00', '../', '<script>', "1' OR '1'='1", '${x}', '{{x}}', 'null', ' ', 'x',
];
/** Control characters: refused in names, storable elsewhere (NUL is not: the API refuses it). */
const CONTROLS = ['\t', '\n', '\r\n', '\u0007', '\u001B[31m', '\u007F', '\u0085', '\u009F'];
/** Whitespace the schemas trim off: sent around names and descriptions. */
const PADS = ['', '', ' ', '  ', '\t', '\n', '\u00A0', '\u3000', '\uFEFF', '\u2028', ' \u2003 '];

const piece = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...STORABLE) }, { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }) });
const pieceOrControl = fc.oneof({ weight: 4, arbitrary: piece }, { weight: 1, arbitrary: fc.constantFrom(...CONTROLS) });
const pad = fc.constantFrom(...PADS);

/** `text` cut to at most `max` UTF-16 units, never between the halves of a surrogate pair. */
function cut(text: string, max: number): string {
  let out = '';
  for (const char of text) {
    if (out.length + char.length > max) break;
    out += char;
  }
  return out;
}

/** `text` cut so that it takes at most `max` characters as a JSON string (quotes excluded). */
function cutJson(text: string, max: number): string {
  let out = '';
  let size = 0;
  for (const char of text) {
    const width = JSON.stringify(char).length - 2;
    if (size + width > max) break;
    out += char;
    size += width;
  }
  return out;
}

/** `seed` repeated up to the limit: exactly `max` units long, or one short when a pair would not fit. */
const fill = (seed: string, max: number) => cut(seed.repeat(Math.ceil(max / seed.length) + 1), max);

/** Storable text of at most `max` UTF-16 units: short mixes, and now and then one at the limit. */
function storableText(max: number, options: { controls?: boolean; min?: number } = {}): fc.Arbitrary<string> {
  const unit = options.controls ? pieceOrControl : piece;
  const min = options.min ?? 0;
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.array(unit, { minLength: min, maxLength: 8 }).map((parts) => cut(parts.join(''), max)) },
      { weight: 1, arbitrary: fc.array(unit, { minLength: 1, maxLength: 3 }).map((parts) => fill(parts.join(''), max)) },
    )
    .filter((text) => text.length >= min);
}

/** A Name (routes/common.ts): 1-200 characters once trimmed, no control characters; sent with whitespace around. */
const nameText = fc
  .tuple(pad, storableText(200), pad)
  .map(([before, core, after]) => before + (core.trim() === '' ? cut(`n${core}`, 200) : core) + after);
/** A description: at most 2000 characters once trimmed, control characters allowed. */
const descriptionText = fc.tuple(pad, storableText(2000, { controls: true }), pad).map((parts) => parts.join(''));

export const METADATA_MAX_JSON = 16_384;
const metadataKey = storableText(100, { controls: true, min: 1 }).filter((key) => key !== '__proto__' && key !== 'constructor');
const metadataValue = fc.jsonValue({ maxDepth: 3, stringUnit: pieceOrControl });
const fitsMetadata = (value: Record<string, unknown>) => JSON.stringify(value).length <= METADATA_MAX_JSON;
/** 15 containers under the top-level object: the deepest metadata allowed (16 levels). */
const deepestMetadata = fc.array(fc.boolean(), { minLength: 15, maxLength: 15 }).map((kinds) => ({
  deep: kinds.reduce<unknown>((inner, array) => (array ? [inner] : { d: inner }), 'bottom'),
}));
const metadata: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { weight: 6, arbitrary: fc.dictionary(metadataKey, metadataValue, { maxKeys: 6 }).filter(fitsMetadata) },
  { weight: 1, arbitrary: fc.uniqueArray(metadataKey, { minLength: 50, maxLength: 50 }).map((keys) => Object.fromEntries(keys.map((key, i) => [key, i]))).filter(fitsMetadata) },
  { weight: 1, arbitrary: deepestMetadata },
  {
    weight: 1,
    arbitrary: fc.array(piece, { minLength: 1, maxLength: 3 }).map((parts) => ({ text: cutJson(fill(parts.join(''), METADATA_MAX_JSON), METADATA_MAX_JSON - '{"text":""}'.length) })),
  },
  {
    weight: 1,
    arbitrary: fc.constant({ max: Number.MAX_VALUE, min: -Number.MAX_VALUE, tiny: Number.MIN_VALUE, safe: Number.MAX_SAFE_INTEGER, unsafe: 2 ** 64, zero: -0, e: 1e-300 }),
  },
);

const EARLIEST = Date.parse('0001-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');
const OFFSETS = [null, 0, 345, 840, -720, 570, -210];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** `ms` as ISO 8601 at a UTC offset (minutes; null: Z) with 0-9 fractional digits (truncated). */
function isoAt(ms: number, offset: number | null, digits: number): string {
  const local = new Date(ms + (offset ?? 0) * 60_000);
  if (local.getUTCFullYear() < 1 || local.getUTCFullYear() > 9999) return isoAt(ms, null, digits);
  const fraction = digits === 0 ? '' : `.${`${String(local.getUTCMilliseconds()).padStart(3, '0')}000000`.slice(0, digits)}`;
  const zone = offset === null ? 'Z' : `${offset < 0 ? '-' : '+'}${pad2(Math.floor(Math.abs(offset) / 60))}:${pad2(Math.abs(offset) % 60)}`;
  return local.toISOString().slice(0, 19) + fraction + zone;
}

const timestamp = (min: number, max: number) =>
  fc.tuple(fc.integer({ min, max }), fc.constantFrom(...OFFSETS), fc.constantFrom(0, 1, 3, 6, 9)).map(([ms, offset, digits]) => isoAt(ms, offset, digits));
/** A day ahead at least, up to the last instant Postgres stores. */
const futureTimestamp = timestamp(Date.now() + 86_400_000, LATEST);
const anyTimestamp = timestamp(EARLIEST, LATEST);

const SLUG_SUFFIX = Math.random().toString(36).slice(2, 8);
let slugs = 0;
/** A valid slug, unique in the database (a taken one is a 409 by design). */
const slug = fc
  .stringMatching(/^[a-z0-9]{1,20}(-[a-z0-9]{1,10}){0,3}$/)
  .map((base) => `${base}-${SLUG_SUFFIX}${(slugs++).toString(36)}`.slice(-63).replace(/^-+/, ''));

/** Query pairs (keys may repeat in a query string). */
export type Query = Array<[string, string]>;
const toPairs = (record: Record<string, string | undefined>): Query => Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined);

/** A page limit (1-100) in the spellings z.coerce.number() accepts. */
const limitText = fc
  .tuple(fc.integer({ min: 1, max: 100 }), fc.constantFrom('plain', 'zero', 'decimal', 'plus', 'space', 'hex'))
  .map(([n, form]) => ({ plain: `${n}`, zero: `0${n}`, decimal: `${n}.0`, plus: `+${n}`, space: ` ${n}`, hex: `0x${n.toString(16)}` })[form]);
const cursor = fc.uuid().map(encodeCursor);
const pageQuery = (extra: Record<string, fc.Arbitrary<string>> = {}) => fc.record({ limit: limitText, cursor, ...extra }, { requiredKeys: [] }).map(toPairs);
const ACTIONS = ['api_key.created', 'agent.created', 'webhook.secret_rotated', 'organization.created', 'x', 'a'.repeat(100), `${'a'.repeat(49)}.${'b'.repeat(50)}`];
const auditQuery = fc
  .record(
    {
      limit: limitText,
      cursor,
      action: fc.oneof(fc.constantFrom(...ACTIONS), fc.stringMatching(/^[a-z_]{1,12}(\.[a-z_]{1,12}){0,3}$/)),
      actor_type: fc.constantFrom('platform_admin', 'api_key', 'agent', 'system', 'anonymous'),
      actor_id: storableText(100, { controls: true, min: 1 }),
      range: fc.tuple(fc.option(anyTimestamp, { nil: undefined }), fc.option(anyTimestamp, { nil: undefined })),
    },
    { requiredKeys: [] },
  )
  .map(({ range, ...rest }) => {
    const times = (range ?? []).flatMap((value) => (value === undefined ? [] : [value]));
    const [a, b] = times.sort((x, y) => Date.parse(x) - Date.parse(y));
    // since must be before until: equal instants keep only until.
    const since = a !== undefined && b !== undefined && Date.parse(a) === Date.parse(b) ? undefined : b === undefined ? undefined : a;
    return toPairs({ ...rest, since, until: b ?? a });
  });
/** Keys Google may add to the callback (the query is loose); never error, code or state. */
const callbackExtras = fc.dictionary(fc.constantFrom('scope', 'authuser', 'prompt', 'hd', 'iss', 'session_state'), storableText(200, { controls: true }), { maxKeys: 3 }).map(toPairs);

/** Valid query per route (by spec); the others get none. */
export const VALID_QUERIES: Record<string, fc.Arbitrary<Query>> = {
  'GET /api/v1/organizations': pageQuery(),
  'GET /api/v1/api-keys': pageQuery(),
  'GET /api/v1/webhooks': pageQuery(),
  'GET /api/v1/agents': pageQuery({ status: fc.constantFrom('pending', 'online', 'offline', 'disabled') }),
  'GET /api/v1/webhooks/:id/deliveries': pageQuery({ status: fc.constantFrom('pending', 'leased', 'done', 'dead') }),
  'GET /api/v1/audit-events': auditQuery,
  'GET /api/v1/oauth/google/start': fc.constantFrom<Query>([], [['redirect', 'true']], [['redirect', 'false']]),
  'GET /api/v1/oauth/google/callback': callbackExtras,
};

export interface Body {
  body: string | Buffer | undefined;
  contentType: string | undefined;
  /** Strings the answer must contain (as stored: trimmed). */
  echoes: string[];
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8'];
const ECHOED = ['name', 'description', 'slug'];
export const noBody = fc.constant<Body>({ body: undefined, contentType: undefined, echoes: [] });

function echoesOf(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [];
  return ECHOED.map((key) => (value as Record<string, unknown>)[key]).flatMap((field) => (typeof field === 'string' && field.trim() !== '' ? [field.trim()] : []));
}

const json = (value: fc.Arbitrary<unknown>): fc.Arbitrary<Body> =>
  fc.tuple(value, fc.constantFrom(...JSON_TYPES)).map(([v, contentType]) => ({ body: JSON.stringify(v), contentType, echoes: echoesOf(v) }));
/** A body the route may also go without (optionalBody: absent and null mean {}). */
const optionalJson = (fields: fc.Arbitrary<Record<string, unknown>>) =>
  fc.oneof({ weight: 1, arbitrary: noBody }, { weight: 1, arbitrary: json(fc.constant(null)) }, { weight: 4, arbitrary: json(fields) });
const someFields = (record: Record<string, unknown>) => Object.keys(record).length > 0;
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: null });

/** A delivery as a sender sends it: JSON (odd unicode, texts the API could not store), text, bytes. */
const hookBody: fc.Arbitrary<Body> = fc.oneof(
  fc.tuple(fc.jsonValue({ maxDepth: 3, stringUnit: pieceOrControl }), fc.constantFrom('application/json', 'application/vnd.github+json', 'application/cloudevents+json; charset=utf-8')).map(
    ([value, contentType]) => ({ body: JSON.stringify(value), contentType, echoes: [] }),
  ),
  fc.constantFrom('{"a":"\\u0000"}', '"\\ud800"', '[]', 'null', '0').map((body) => ({ body, contentType: 'application/json', echoes: [] })),
  fc.tuple(storableText(500, { controls: true }), fc.constantFrom('text/plain; charset=utf-8', 'application/x-www-form-urlencoded')).map(([body, contentType]) => ({ body, contentType, echoes: [] })),
  fc.tuple(fc.uint8Array({ maxLength: 256 }), fc.constantFrom('application/octet-stream', undefined)).map(([bytes, contentType]) => ({ body: Buffer.from(bytes), contentType, echoes: [] })),
);

/** Valid body per route (by spec); the others are sent without one. */
export const VALID_BODIES: Record<string, (ctx: Ctx) => fc.Arbitrary<Body>> = {
  'POST /api/v1/organizations': () => json(fc.record({ name: nameText, slug }, { requiredKeys: ['name'] })),
  'POST /api/v1/api-keys': () => json(fc.record({ name: nameText, role: fc.constantFrom('admin', 'read_only'), expires_at: futureTimestamp }, { requiredKeys: ['name', 'role'] })),
  'POST /api/v1/agents': () => json(fc.record({ name: nameText, description: descriptionText, metadata }, { requiredKeys: ['name'] })),
  'PATCH /api/v1/agents/:id': () =>
    json(fc.record({ name: nameText, description: optional(descriptionText), metadata, disabled: fc.boolean() }, { requiredKeys: [] }).filter(someFields)),
  'POST /api/v1/agents/:id/token': () => optionalJson(fc.record({ grace_seconds: fc.integer({ min: 0, max: 3600 }) }, { requiredKeys: [] })),
  'POST /api/v1/webhooks': (ctx) =>
    json(
      fc.record(
        { name: nameText, description: descriptionText, agent_id: fc.constantFrom(ctx.agent.id, ctx.agent.id.toUpperCase(), null), enabled: fc.boolean(), signature_scheme: fc.constantFrom('auto', 'none') },
        { requiredKeys: ['name'] },
      ),
    ),
  'PATCH /api/v1/webhooks/:id': (ctx) =>
    json(
      fc
        .record(
          { name: nameText, description: optional(descriptionText), agent_id: fc.constantFrom(ctx.agent.id, null), enabled: fc.boolean(), signature_scheme: fc.constantFrom('auto', 'none') },
          { requiredKeys: [] },
        )
        .filter(someFields),
    ),
  'POST /api/v1/webhooks/:id/secret': () => optionalJson(fc.record({ overlap_seconds: fc.integer({ min: 0, max: 604_800 }) }, { requiredKeys: [] })),
  'POST /api/v1/agent/heartbeat': () =>
    optionalJson(fc.record({ status_detail: storableText(500, { controls: true }), version: storableText(100, { controls: true }) }, { requiredKeys: [] })),
  'POST /api/v1/agent/deliveries/lease': () => optionalJson(fc.record({ limit: fc.integer({ min: 1, max: 100 }), lease_seconds: fc.integer({ min: 10, max: 900 }) }, { requiredKeys: [] })),
  'POST /api/v1/agent/deliveries/:id/nack': () =>
    optionalJson(fc.record({ retry_after_seconds: fc.integer({ min: 0, max: 86_400 }), error: storableText(1000, { controls: true }) }, { requiredKeys: [] })),
  'POST /api/v1/hooks/:webhook_id': () => hookBody,
};
