// Webhook signature verification over the exact received bytes, constant-time, for:
//  - GitHub (X-Hub-Signature-256) and X-Webhook-Signature: "sha256=<hex>" HMAC-SHA256 of the body,
//    keyed with the secret string exactly as shown to the operator (whsec_ prefix included);
//  - Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature "v1,<base64> …" over
//    "id.timestamp.body", keyed with the base64-decoded part after whsec_.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';

export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

export type SignatureHeaders = Record<string, string | string[] | undefined>;

export type VerifyResult =
  | { ok: true; scheme: 'github' | 'standard_webhooks'; secretIndex: number }
  | { ok: false; code: 'signature_missing' | 'signature_invalid' | 'timestamp_out_of_tolerance' };

function header(headers: SignatureHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(' ') : value;
}

function equalBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function standardKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
}

/** Signature headers are never stored or logged. */
export const SIGNATURE_HEADERS = new Set(['x-hub-signature', 'x-hub-signature-256', 'x-webhook-signature', 'webhook-signature']);

export function verifyWebhookSignature(
  headers: SignatureHeaders,
  body: Buffer,
  secrets: string[],
  options: { nowSeconds: number; toleranceSeconds: number },
): VerifyResult {
  const standard = header(headers, 'webhook-signature');
  if (standard !== undefined) {
    const id = header(headers, 'webhook-id');
    const timestamp = header(headers, 'webhook-timestamp');
    if (!id || !timestamp) return { ok: false, code: 'signature_missing' };
    if (!/^\d{1,12}$/.test(timestamp) || Math.abs(options.nowSeconds - Number(timestamp)) > options.toleranceSeconds) {
      return { ok: false, code: 'timestamp_out_of_tolerance' };
    }
    const presented = standard
      .split(' ')
      .map((entry) => entry.split(','))
      .filter(([version, value]) => version === 'v1' && value)
      .map(([, value]) => Buffer.from(value!, 'base64'));
    if (presented.length === 0) return { ok: false, code: 'signature_invalid' };
    for (const [index, secret] of secrets.entries()) {
      const expected = createHmac('sha256', standardKey(secret)).update(`${id}.${timestamp}.`).update(body).digest();
      if (presented.some((candidate) => equalBytes(candidate, expected))) return { ok: true, scheme: 'standard_webhooks', secretIndex: index };
    }
    return { ok: false, code: 'signature_invalid' };
  }
  const hex = header(headers, 'x-hub-signature-256') ?? header(headers, 'x-webhook-signature');
  if (hex === undefined) return { ok: false, code: 'signature_missing' };
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(hex.trim());
  if (!match) return { ok: false, code: 'signature_invalid' };
  const presented = Buffer.from(match[1]!, 'hex');
  for (const [index, secret] of secrets.entries()) {
    const expected = createHmac('sha256', secret).update(body).digest();
    if (equalBytes(presented, expected)) return { ok: true, scheme: 'github', secretIndex: index };
  }
  return { ok: false, code: 'signature_invalid' };
}
