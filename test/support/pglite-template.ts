// Embedded test databases start from a migrated template instead of running initdb each time:
// initdb in WebAssembly costs seconds per database, loading a data directory about one. The
// template is made once per set of migrations and PGlite version, in the temp directory, and
// shared by every test process of the run (made aside, then renamed into place, so parallel
// processes never see half of one). Tests about initdb and first-start migrations do not use it.
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { embeddedDatabase, type Database } from '../../src/db/client.js';
import { applyMigrations, MIGRATIONS_FOLDER } from '../../src/db/migrate.js';

interface Template {
  /** A PGlite data directory (what lives in DATA_DIR/pg), migrated. */
  dataDir: string;
  /** The same data directory as a tarball, for PGlite's loadDataDir. */
  tarball: string;
}

async function templateKey(): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile('node_modules/@electric-sql/pglite/package.json'));
  const files = (await readdir(MIGRATIONS_FOLDER, { recursive: true })).filter((name) => name.endsWith('.sql') || name.endsWith('_journal.json')).sort();
  for (const name of files) hash.update(name).update(await readFile(join(MIGRATIONS_FOLDER, name)));
  return hash.digest('hex').slice(0, 16);
}

const exists = (path: string) => stat(path).then(() => true, () => false);

async function makeTemplate(): Promise<Template> {
  const dir = join(tmpdir(), `switchboard-pglite-template-${await templateKey()}`);
  const template = { dataDir: join(dir, 'pg'), tarball: join(dir, 'pg.tar') };
  if (await exists(join(dir, 'ready'))) return template;

  const work = `${dir}.${process.pid}.tmp`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const client = new PGlite('memory://');
  const memory = embeddedDatabase(client);
  await applyMigrations(memory);
  const dump = await client.dumpDataDir('none');
  await memory.close();
  await writeFile(join(work, 'pg.tar'), Buffer.from(await dump.arrayBuffer()));
  const onDisk = new PGlite(join(work, 'pg'), { loadDataDir: dump });
  await onDisk.waitReady;
  await onDisk.close();
  await writeFile(join(work, 'ready'), '');
  try {
    await rename(work, dir);
  } catch (err) {
    // Another test process got there first: use its template.
    if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await rm(work, { recursive: true, force: true });
  }
  return template;
}

let template: Promise<Template> | undefined;
let tarball: Promise<Blob> | undefined;

/** A new in-memory embedded database with every migration applied. */
export async function migratedEmbedded(): Promise<Database> {
  tarball ??= (async () => new Blob([await readFile((await (template ??= makeTemplate())).tarball)]))();
  const client = new PGlite('memory://', { loadDataDir: await tarball });
  await client.waitReady;
  return embeddedDatabase(client);
}

/** Fills an empty DATA_DIR with a migrated embedded database, as a server would leave it. */
export async function copyTemplateInto(dataDir: string): Promise<void> {
  await cp((await (template ??= makeTemplate())).dataDir, join(dataDir, 'pg'), { recursive: true });
}
