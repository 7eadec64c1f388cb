CREATE TABLE "audit_chain_heads" (
	"chain" text PRIMARY KEY NOT NULL,
	"organization_id" uuid,
	"seq" bigint DEFAULT 0 NOT NULL,
	"hash" text NOT NULL,
	"event_id" uuid,
	"occurred_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "seq" bigint;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "prev_hash" text;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "hash" text;--> statement-breakpoint
ALTER TABLE "audit_chain_heads" ADD CONSTRAINT "audit_chain_heads_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_events_organization_id_seq_idx" ON "audit_events" USING btree ("organization_id","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "audit_events_platform_seq_idx" ON "audit_events" USING btree ("seq") WHERE "audit_events"."organization_id" is null;--> statement-breakpoint
CREATE INDEX "audit_events_unchained_id_idx" ON "audit_events" USING btree ("id") WHERE "audit_events"."seq" is null;