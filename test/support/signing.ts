// Signing helpers for tests. GitHub-style and Standard Webhooks signatures come from the
// independent reference packages; raw-byte variants use node:crypto directly.
import { createHmac } from 'node:crypto';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { Webhook as StandardWebhook } from 'standardwebhooks';

export async function githubHeaders(secret: string, body: string, extra: Record<string, string> = {}) {
  return { 'content-type': 'application/json', 'x-hub-signature-256': await githubSign(secret, body), ...extra };
}

export function standardHeaders(secret: string, body: string, id: string, at = new Date()) {
  const signature = new StandardWebhook(secret).sign(id, at, body);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

/** X-Webhook-Signature over raw bytes (for bodies that are not text). */
export function rawSignature(secret: string, body: Buffer) {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
