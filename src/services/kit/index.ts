/**
 * The capability kit: what a capability (a service that does metered work for an agent, like /compute
 * and /containers) is built from, so that every capability behaves the same way where it should.
 *
 * To add one:
 * - its policy: a zod schema with defaults and a PolicyCodec (parse over the defaults; EINVAL through
 *   `validate`), a table made by `policyTableMigration` in its own migration range;
 * - its engine: `class XEngine extends CapabilityCore<XPolicy>` with a CapabilitySpec (service name,
 *   policy table, mount path, the journal's id field); the core gives it the policies (only what was
 *   written is stored, resolved over the defaults in force), the caps of its `service:<name>` budget
 *   level, the trace sink, the agents' event channels, and `submits`, the idempotent-submit path:
 *   `begin` on the raw request, `earlier` before anything is checked, `commit` with the work in one
 *   transaction;
 * - its request: `parseJsonObject`, then a schema spreading `submitFields` (max_cost, budget_scope,
 *   idempotency_key), checked with `validate`;
 * - its config: `loadConfigSection(home, '<name>', schema)`;
 * - its files: `capabilityRoot` (`new`, `<kind>/`, `providers/`, `policy`, `usage`), each record's
 *   files with `recordMeta` and their streams with `recordStream`.
 */
export { CapabilityCore, type CappedPolicy, type CapabilityOptions, type CapabilitySpec } from './core.js';
export { loadConfigSection, parseConfigSection } from './config.js';
export { IdempotentSubmit, canonicalJson, requestHash, type Submission } from './idempotent.js';
export { policyTableMigration } from './migrations.js';
export { PolicyStore, writtenPolicy, type PolicyCodec, type PolicyEntry } from './policy-store.js';
export { REQUEST_ID, providerField, submitFields } from './request-fields.js';
export { capabilityRoot, recordMeta, recordStream, type CapabilitySurface, type RecordStreamOptions } from './surface.js';
export { eventLogTrace, type TraceEvent, type TraceSink } from './trace-sink.js';
export { describeIssues, parseJsonObject, validate } from './validation.js';
