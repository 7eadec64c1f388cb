import { z } from 'zod';
import type { Organization } from '../../db/organizations.js';
import { iso, Name, Timestamp } from '../common.js';
import { CreatedApiKeySchema } from '../api-keys/schemas.js';

export const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export const OrganizationSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  slug: z.string(),
  created_at: Timestamp,
});

export const CreateOrganizationBody = z.strictObject({
  name: Name,
  slug: z.string().min(2).max(63).regex(SLUG, { error: 'must be lowercase letters, digits and single hyphens' }).optional(),
});

export const CreateOrganizationResponse = z.object({ organization: OrganizationSchema, api_key: CreatedApiKeySchema });
export const OrganizationResponse = z.object({ organization: OrganizationSchema });

export const toOrganizationJson = (org: Organization) => ({ id: org.id, name: org.name, slug: org.slug, created_at: iso(org.createdAt) });

