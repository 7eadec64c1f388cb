-- Pending OAuth states belong to the admin key that started them. States of no key, of a key that
-- no longer exists or has been revoked can never complete a connection: drop them first.
DELETE FROM "oauth_states" s WHERE s."api_key_id" IS NULL OR NOT EXISTS (SELECT 1 FROM "api_keys" k WHERE k."id" = s."api_key_id" AND k."revoked_at" IS NULL);--> statement-breakpoint
ALTER TABLE "oauth_states" ALTER COLUMN "api_key_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "oauth_states" ADD CONSTRAINT "oauth_states_api_key_id_api_keys_id_fk" FOREIGN KEY ("api_key_id") REFERENCES "public"."api_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "oauth_states_api_key_id_idx" ON "oauth_states" USING btree ("api_key_id");