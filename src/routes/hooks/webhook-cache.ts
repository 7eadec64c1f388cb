// Enabled webhooks recently seen by ingest, so a delivery to a known webhook needs no lookup
// query before its signature is verified. The copy is never trusted on its own: the INSERT that
// stores the delivery checks that the webhook still has the state it was verified with, and
// answers WebhookChanged otherwise (db/deliveries.ts); the route then drops the entry, reads the
// row again and verifies again. A disable, delete or rotation through any instance is therefore
// seen by the next delivery, with no invalidation messages between instances.
// Only enabled webhooks are kept: "not found" and "disabled" are always read fresh.
import type { Webhook } from '../../db/webhooks.js';

export interface WebhookCache {
  get(id: string): Webhook | undefined;
  set(webhook: Webhook): void;
  delete(id: string): void;
  readonly size: number;
}

/** At most maxEntries webhooks; the least recently used goes first. */
export function webhookCache(maxEntries = 10_000): WebhookCache {
  const entries = new Map<string, Webhook>();
  return {
    get(id) {
      const webhook = entries.get(id);
      if (webhook !== undefined) {
        // Map keeps insertion order: re-inserting marks it most recently used.
        entries.delete(id);
        entries.set(id, webhook);
      }
      return webhook;
    },
    set(webhook) {
      entries.delete(webhook.id);
      if (!webhook.enabled) return;
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(webhook.id, webhook);
    },
    delete(id) {
      entries.delete(id);
    },
    get size() {
      return entries.size;
    },
  };
}
