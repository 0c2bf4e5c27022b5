/**
 * /containers/policy: which images an agent may run, the limits it may ask for and their defaults, and
 * the price of a session. The server gives the defaults; an admin replaces an agent's policy by writing
 * the file (fields left out take the defaults, also when they change: only what was written is stored).
 * Policies live in SQLite, one per agent, versioned (the kit's PolicyStore).
 */
import { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import { writtenPolicy, type PolicyCodec, type PolicyStore } from '../kit/policy-store.js';
import { validate } from '../kit/validation.js';
import { checkImageReference, imagePatternProblem } from './reference.js';

/** An engine network (`bridge`, a user network) or `container:<name>`, in the engine's name characters. */
const NETWORK_MODE = /^(?:container:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const positive = z.number().int().positive();
const money = z.number().int().nonnegative().nullable();

export const policySchema = z.strictObject({
  /** The image of a request that names none. */
  default_image: z.string().min(1).max(512).default('agent9/busybox:latest'),
  /** Image patterns requests may use (empty = any image present in the engine); `*` matches anything. */
  allowed_images: z.array(z.string().min(1).max(512)).default([]),
  /** Image patterns refused even when allowed; wins over allowed_images. */
  blocked_images: z.array(z.string().min(1).max(512)).default([]),
  /** Whether a request may turn the network on (`limits.allow_network`). */
  allow_network: z.boolean().default(false),
  /** The engine network a session with network gets. */
  network_mode: z.string().min(1).max(128).default('bridge'),
  /** A session's lifetime: the default and the most a request may ask. */
  default_time_secs: positive.default(600),
  max_time_secs: positive.default(3600),
  default_memory_mb: positive.default(256),
  max_memory_mb: positive.default(4096),
  default_cpu_cores: z.number().positive().default(1),
  max_cpu_cores: z.number().positive().default(2),
  default_pids: positive.default(256),
  max_pids: positive.default(4096),
  /** Size of the tmpfs workdir (and of /tmp); tmpfs pages count against the memory limit too. */
  default_disk_mb: positive.default(256),
  max_disk_mb: positive.default(4096),
  /** A command's own time limit when it names none; its whole process tree is killed at the limit. */
  default_exec_timeout_secs: positive.default(300),
  /** Bytes kept per command and stream (stdout, stderr); output past it is counted and dropped. */
  max_output_bytes: positive.max(64 * 1024 * 1024).default(1024 * 1024),
  /** The largest file `files/` reads or writes in one go. */
  max_file_bytes: positive.max(256 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Sessions of one agent not yet finished; more are refused with EAGAIN. */
  max_concurrent: positive.max(1024).default(8),
  /** Commands in one request. */
  max_commands: positive.max(1000).default(100),
  /** Caps on what /containers may spend per tick and per rolling day, micro-USD (the service:containers budget level). */
  max_cost_per_tick: money.default(null),
  max_cost_per_day: money.default(null),
  /** Cap on what one session may reserve, micro-USD. */
  max_cost_per_session: money.default(null),
  /** Price of one CPU core for one second of session lifetime, micro-USD. */
  price_per_cpu_second: z.number().int().nonnegative().default(10),
  /** Reserved when a request names no max cost (else the price of its whole lifetime is reserved). */
  default_max_cost: money.default(null),
  require_max_cost: z.boolean().default(false),
  require_idempotency: z.boolean().default(false),
  /** Seconds between SIGTERM and SIGKILL on `stop`. */
  stop_grace_secs: z.number().int().nonnegative().max(60).default(2),
});

export type ContainerPolicy = z.infer<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;

/**
 * Validates a policy (a partial one takes the defaults); EINVAL names the field. What an admin writes
 * (and the config's defaults) must also name images and networks the engine can take; a policy stored
 * before that rule (`stored`) is read as it is, and a bad default image is then refused per request.
 */
export function parsePolicy(value: unknown, path = '/policy', defaults: Partial<ContainerPolicy> = {}, opts: { stored?: boolean } = {}): ContainerPolicy {
  const p = validate(policySchema, { ...defaults, ...writtenPolicy(value, path) }, path);
  for (const [dflt, max] of [
    ['default_time_secs', 'max_time_secs'],
    ['default_memory_mb', 'max_memory_mb'],
    ['default_cpu_cores', 'max_cpu_cores'],
    ['default_pids', 'max_pids'],
    ['default_disk_mb', 'max_disk_mb'],
  ] as const) {
    if (p[dflt] > p[max]) throw new FsError('EINVAL', path, `${dflt} (${p[dflt]}) is over ${max} (${p[max]})`);
  }
  if (!opts.stored) checkEngineNames(p, path);
  return p;
}

/** default_image is a reference, the image lists are patterns of references, network_mode a network name. */
function checkEngineNames(p: ContainerPolicy, path: string): void {
  const refuse = (field: string, value: string, problem: string): never => {
    throw new FsError('EINVAL', path, `field '${field}': ${JSON.stringify(value)} ${problem}`);
  };
  checkImageReference(p.default_image, path, 'default_image');
  for (const list of ['allowed_images', 'blocked_images'] as const) {
    p[list].forEach((pattern, i) => {
      const problem = imagePatternProblem(pattern);
      if (problem) refuse(`${list}.${i}`, pattern, `is not an image pattern: ${problem}`);
    });
  }
  if (!NETWORK_MODE.test(p.network_mode)) {
    refuse('network_mode', p.network_mode, 'is not a network name (letters, digits, _ . -, or container:<name>)');
  }
}

/** `*` matches any run of characters; everything else literally. `agent9/*` matches every agent9 image. */
export function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return re.test(value);
}

/** Whether an image may run; the reason when not. Both the reference as written and with `:latest` are tried. */
export function imageRefusal(policy: ContainerPolicy, image: string, normalized: string): string | undefined {
  const matches = (p: string) => globMatch(p, image) || globMatch(p, normalized);
  const blocked = policy.blocked_images.find(matches);
  if (blocked) return `image ${image} is blocked by policy (blocked_images: ${blocked})`;
  if (policy.allowed_images.length > 0 && !policy.allowed_images.some(matches)) {
    return `image ${image} is not allowed by policy (allowed_images: ${policy.allowed_images.join(', ')})`;
  }
  return undefined;
}

/** How the kit's PolicyStore reads and checks container policies (table container_policies). */
export const containerPolicyCodec: PolicyCodec<ContainerPolicy> = { parse: (written, path, defaults, opts) => parsePolicy(written, path, defaults, opts) };

export type ContainerPolicyStore = PolicyStore<ContainerPolicy>;
