// A batch's bodies reach Postgres as one bytea parameter beside the JSON rows (db/deliveries.ts).
// Whatever the bytes, and however a batch mixes them, the row holds them exactly.
import { inArray } from 'drizzle-orm';
import fc from 'fast-check';
import t from 'tap';
import { storeDeliveries } from '../../src/db/deliveries.js';
import { webhookDeliveries } from '../../src/db/schema.js';
import { build, createOrg, createWebhookWithRow } from '../helper.js';
import { newDelivery } from '../support/deliveries.js';

const bodies = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }).map((text) => Buffer.from(text, 'utf8')), // any code point, NUL and astral included
  fc.string({ unit: 'grapheme', maxLength: 300 }).map((text) => Buffer.from(text, 'utf8')),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)), // mostly not UTF-8
  fc.constantFrom(
    Buffer.alloc(0),
    Buffer.from('{"a":"\\u0000"}'), // an escaped NUL is plain ASCII text
    Buffer.from([0x7b, 0x00, 0x7d]), // a raw NUL byte is not storable as text
    Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate: not valid UTF-8
    Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), // a byte-order mark stays
    Buffer.from('\\x41 \\\\ \\'), // backslashes are not escapes
  ),
);

t.test('every body is stored byte for byte, in batches that mix text and binary', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  await fc.assert(
    fc.asyncProperty(fc.array(bodies, { minLength: 1, maxLength: 12 }), async (batch) => {
      const inputs = batch.map((body) => newDelivery(hook, body, { contentType: 'application/octet-stream' }));
      const stored = await storeDeliveries(app.db, inputs);
      const ids = stored.map((result) => (result.ok ? result.value.id : ''));
      t.ok(stored.every((result) => result.ok), 'every delivery stored');
      const rows = await app.db.select({ id: webhookDeliveries.id, body: webhookDeliveries.body, size: webhookDeliveries.size }).from(webhookDeliveries).where(inArray(webhookDeliveries.id, ids));
      const byId = new Map(rows.map((row) => [row.id, row]));
      return batch.every((body, i) => {
        const row = byId.get(ids[i]!);
        return row !== undefined && Buffer.compare(row.body, body) === 0 && row.size === body.length;
      });
    }),
    { numRuns: 60 },
  );
});
