// `npm run cli -- <command>`: bootstrap and maintenance commands that run without the server,
// against the configured database (the embedded one too, while no server holds DATA_DIR).
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { auditChainHeads, BREAK_REASONS, verifyAuditChains } from '../db/audit-chain.js';
import { openDatabase, type Database } from '../db/client.js';
import { applyMigrations, migrationStatus } from '../db/migrate.js';
import { getOrganization, listOrganizations } from '../db/organizations.js';
import { provisionOrganization, SlugTakenError } from '../db/provisioning.js';
import { generateKey } from '../crypto/keyring.js';
import { checkCanaries, retireCanaries } from '../db/canaries.js';
import { ciphertextsByKey, reencryptSecrets } from '../db/key-rotation.js';
import { loadEnvFile } from '../env-file.js';
import { doctor, parseDoctorArgs } from './doctor.js';
import { loadKeyring } from '../keyring-loader.js';

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  migrate                              apply pending database migrations
  org create --name NAME [--slug SLUG] create an organization; prints its id and first admin API key (once)
  org list [--json]                    list organizations
  audit verify [--org ID] [--json]     walk the audit log's hash chains; exit 1 and name the first
                                       broken event of each broken chain
  audit status [--json]                print each audit chain's head (sequence number and hash)
  keys generate                        print a new random TOKEN_ENCRYPTION_KEY
  keys rotate                          re-encrypt every stored secret under TOKEN_ENCRYPTION_KEY
                                       (old keys in TOKEN_ENCRYPTION_OLD_KEYS); safe while servers run
  doctor [--json] [--url URL]          check the configuration, database, keyring and Redis (read-only);
                                       --url also probes a running instance's /readyz and /api/v1/status;
                                       exits 0 (ok), 1 (warnings) or 2 (failures)
  help                                 show this message
`;

class UsageError extends Error {}

type Command = (database: Database, args: string[]) => Promise<number>;

/** Commands that need no configuration or database. */
const standalone: Record<string, () => number> = {
  'keys generate'() {
    process.stdout.write(`${generateKey()}\n`);
    return 0;
  },
};

/** What replaces a secret `keys rotate` cannot decrypt, so the old key can go. */
const UNREADABLE_FIX =
  'Replace each: webhooks: POST /api/v1/webhooks/{id}/secret with "overlap_seconds": 0 (senders get the new secret); ' +
  'google_connections: DELETE /api/v1/oauth/google, then connect again; oauth_states: nothing, they expire within 10 minutes. Then run it again.';

const commands: Record<string, Command> = {
  async 'keys rotate'(database) {
    const config = loadConfig(process.env);
    const { keyring } = await loadKeyring(config);
    await applyMigrations(database);
    // A keyring that cannot read what is here (a key missing from TOKEN_ENCRYPTION_OLD_KEYS, or a
    // generated development key) must change nothing: retiring the servers' canaries would make
    // every one of them not ready.
    const canaries = await checkCanaries(database.db, keyring);
    if (!canaries.ok) {
      process.stderr.write(
        `error: the configured keys cannot decrypt this database (keys not configured: ${canaries.unknown_key_ids.join(', ') || 'none'}; ` +
          `configured but failing: ${canaries.failing_key_ids.join(', ') || 'none'}). Set TOKEN_ENCRYPTION_KEY to the new key and ` +
          'TOKEN_ENCRYPTION_OLD_KEYS to every key the servers use, then run it again. Nothing was changed.\n',
      );
      return 2;
    }
    const before = await ciphertextsByKey(database.db);
    const report = await reencryptSecrets(database.db, keyring);
    const after = await ciphertextsByKey(database.db);
    const complete = Object.keys(after).every((id) => id === keyring.currentKeyId);
    if (complete) await retireCanaries(database.db, keyring);
    process.stdout.write(
      `current key: ${keyring.currentKeyId}\n` +
        `re-encrypted: ${report.webhooks} webhooks, ${report.google_connections} Google connections, ${report.oauth_states} pending OAuth states\n` +
        `ciphertexts by key before: ${JSON.stringify(before)}\n` +
        `ciphertexts by key after:  ${JSON.stringify(after)}\n` +
        (complete
          ? 'All secrets are under the current key: old keys can be removed from TOKEN_ENCRYPTION_OLD_KEYS.\n'
          : report.unreadable.length > 0
            ? 'Some secrets are still under old keys: the rows below do not decrypt.\n'
            : 'Some secrets are still under old keys (written during the run?): run it again.\n'),
    );
    if (report.unreadable.length === 0) return 0;
    // Every other row was rewritten; these stay as they are until their organization replaces them.
    process.stderr.write(
      `error: ${report.unreadable.length} stored secrets do not decrypt with the configured keys and were left as they are:\n` +
        report.unreadable.map((row) => `  ${row.table} ${row.id} (organization ${row.organization_id}): ${row.reason}\n`).join('') +
        `${UNREADABLE_FIX}\n`,
    );
    return 1;
  },

  async 'audit verify'(database, args) {
    const { values } = parseArgs({ args, options: { org: { type: 'string' }, json: { type: 'boolean' } } });
    if (values.org !== undefined && !UUID.test(values.org)) throw new UsageError('--org must be an organization id (a UUID)');
    await requireMigrated(database);
    if (values.org !== undefined && !(await getOrganization(database.db, values.org))) {
      process.stderr.write(`error: no organization ${values.org}\n`);
      return 2;
    }
    const reports = await verifyAuditChains(database.db, { organizationId: values.org });
    const broken = reports.filter((report) => !report.ok);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: broken.length === 0, chains: reports })}\n`);
      return broken.length === 0 ? 0 : 1;
    }
    for (const report of reports) {
      const head = report.head ? `head #${report.head.seq} ${report.head.hash} (event ${report.head.event_id})` : 'empty';
      if (report.ok) {
        process.stdout.write(`${report.chain}: ok, ${report.events} events, ${head}\n`);
      } else {
        const at = report.first_break!;
        process.stdout.write(
          `${report.chain}: BROKEN at event ${at.event_id ?? '(unknown)'} (seq ${at.seq ?? 'none'}): ${BREAK_REASONS[at.reason]}\n` +
            `  ${report.events} events; the chain verifies up to ${report.head ? `#${report.head.seq}` : 'its start'}\n`,
        );
      }
    }
    process.stdout.write(
      broken.length === 0
        ? `All ${reports.length} audit chains verify.\n`
        : `${broken.length} of ${reports.length} audit chains are broken: see "Audit log integrity" in docs/operations/README.md.\n`,
    );
    return broken.length === 0 ? 0 : 1;
  },

  async 'audit status'(database, args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
    await requireMigrated(database);
    const heads = await auditChainHeads(database.db);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(heads)}\n`);
    } else {
      if (heads.length === 0) process.stdout.write('No audit chain started yet.\n');
      for (const head of heads) {
        process.stdout.write(`${head.chain}  #${head.seq}  ${head.hash}  event ${head.event_id ?? '-'}  ${head.occurred_at?.toISOString() ?? '-'}\n`);
      }
    }
    return 0;
  },

  async migrate(database) {
    await applyMigrations(database);
    const status = await migrationStatus(database.db);
    process.stdout.write(`migrations applied: ${status.applied}, pending: ${status.pending} (${database.kind} database)\n`);
    return 0;
  },

  async 'org create'(database, args) {
    const { values } = parseArgs({ args, options: { name: { type: 'string' }, slug: { type: 'string' }, json: { type: 'boolean' } } });
    const name = values.name?.trim();
    if (!name) throw new UsageError('org create needs --name');
    if (values.slug !== undefined && !/^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(values.slug)) {
      throw new UsageError('--slug must be lowercase letters, digits and single hyphens');
    }
    await applyMigrations(database);
    const { organization, key, token } = await provisionOrganization(
      database.db,
      { name, slug: values.slug },
      { actorType: 'system', actorId: 'cli', clientIp: null, requestId: null },
    );
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ organization_id: organization.id, slug: organization.slug, api_key_id: key.id, api_key: token })}\n`);
    } else {
      process.stdout.write(
        `organization: ${organization.id} (${organization.slug})\n` +
          `admin API key: ${token}\n` +
          'Store the key now: it is not shown again (only its hash is kept).\n',
      );
    }
    return 0;
  },

  async 'org list'(database, args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
    await requireMigrated(database);
    const rows = [];
    let after: string | undefined;
    do {
      const page = await listOrganizations(database.db, { limit: 100, after });
      rows.push(...page.data);
      after = page.data.at(-1)?.id;
      if (!page.nextCursor) break;
    } while (after);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(rows.map((org) => ({ id: org.id, name: org.name, slug: org.slug, created_at: org.createdAt })))}\n`);
    } else {
      for (const org of rows) process.stdout.write(`${org.id}  ${org.slug}  ${org.name}\n`);
    }
    return 0;
  },
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Read-only commands do not migrate (that would change what they inspect); they refuse to run behind. */
async function requireMigrated(database: Database): Promise<void> {
  const status = await migrationStatus(database.db);
  if (status.pending > 0) throw new Error(`${status.pending} migrations are pending: run \`npm run migrate\` first`);
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help') {
    process.stdout.write(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const twoWords = `${argv[0]} ${argv[1] ?? ''}`;
  const simple = standalone[twoWords];
  if (simple) return simple();
  if (argv[0] === 'doctor') {
    // Judges the configuration itself, so it must not stop at the first invalid variable.
    let args;
    try {
      args = parseDoctorArgs(argv.slice(1));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    loadEnvFile();
    return doctor(args, process.env);
  }
  const [name, args] = twoWords in commands ? [twoWords, argv.slice(2)] : [argv[0]!, argv.slice(1)];
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command: ${argv.join(' ')}`);
  loadEnvFile();
  const config = loadConfig(process.env);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    poolMax: 2,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    dataDir: config.dataDir,
  });
  try {
    return await command(database, args);
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    const message =
      err instanceof ConfigError || err instanceof SlugTakenError
        ? err.message
        : `error: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`${message}\n`);
    process.exit(1);
  },
);
