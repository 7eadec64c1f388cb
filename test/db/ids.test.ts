// Ids are UUIDv7, unique and in creation order within a process (cursors rely on it).
import t from 'tap';
import { uuidv7 } from '../../src/db/ids.js';

t.test('ids are well-formed version 7 UUIDs, unique and ordered even within one millisecond', async (t) => {
  const ids = Array.from({ length: 20_000 }, () => uuidv7());
  t.equal(new Set(ids).size, ids.length, 'unique');
  t.ok(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)), 'version 7, RFC variant');
  t.ok(ids.every((id, i) => i === 0 || ids[i - 1]! < id), 'each sorts after the previous');
  t.ok(Math.abs(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16) - Date.now()) < 60_000, 'the timestamp is now');
});
