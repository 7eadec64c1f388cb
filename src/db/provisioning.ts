// Creating an organization together with its first admin key, in one transaction. Shared by the
// platform admin API and the bootstrap CLI.
import { randomBytes } from 'node:crypto';
import { issueToken } from '../crypto/tokens.js';
import { API_KEY_PREFIX, createApiKey, type ApiKey } from './api-keys.js';
import { auditRow, recordAuditEvents, type AuditActor } from './audit-events.js';
import type { Db } from './client.js';
import { createOrganization, type Organization } from './organizations.js';

export class SlugTakenError extends Error {
  override name = 'SlugTakenError';
}

export interface Provisioned {
  organization: Organization;
  key: ApiKey;
  /** The first admin key: returned once, stored only as a hash. */
  token: string;
}

/** A slug derived from a name: "Acme Corp." → "acme-corp". */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/g, '');
  return slug.length >= 2 ? slug : `org-${slug}`.replace(/-$/, '');
}

export async function provisionOrganization(db: Db, input: { name: string; slug?: string | undefined }, actor: AuditActor): Promise<Provisioned> {
  return db.transaction(async (tx) => {
    const derived = slugify(input.name);
    let organization = await createOrganization(tx, { name: input.name, slug: input.slug ?? derived });
    if (!organization && input.slug) throw new SlugTakenError(`The slug "${input.slug}" is already in use`);
    // A derived slug that collides gets a random suffix.
    organization ??= await createOrganization(tx, { name: input.name, slug: `${derived.slice(0, 40).replace(/-+$/, '')}-${randomBytes(3).toString('hex')}` });
    if (!organization) throw new SlugTakenError('Could not derive a free slug; pass one explicitly');
    const issued = issueToken(API_KEY_PREFIX);
    const key = await createApiKey(tx, organization.id, {
      publicId: issued.publicId,
      secretHash: issued.secretHash,
      name: 'initial admin key',
      role: 'admin',
    });
    await recordAuditEvents(tx, [
      auditRow(actor, null, { action: 'organization.created', targetType: 'organization', targetId: organization.id, details: { name: input.name, slug: organization.slug } }),
      auditRow(actor, organization.id, { action: 'api_key.created', targetType: 'api_key', targetId: key.id, details: { role: key.role, prefix: `${API_KEY_PREFIX}_${key.publicId}` } }),
    ]);
    return { organization, key, token: issued.token };
  });
}
