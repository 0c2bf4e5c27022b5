/** What /compute speaks: requests, responses, stream chunks, and the provider contract. */

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
}

/** A request after validation and defaults: what providers see. */
export interface ComputeRequest {
  model: string;
  kind: 'chat' | 'complete';
  /** For `complete`, one user message holding the prompt. */
  messages: ChatMessage[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string[];
  stream: boolean;
  timeout_ms: number;
  idempotency_key?: string;
  /** The most this job may cost, micro-USD: what is reserved, a hard cap. */
  max_cost?: number;
  budget_scope?: { org?: string; repo?: string; issue?: string };
  /** Pins a provider (it must still pass the policy). */
  provider?: string;
  /** Provider-specific knobs (local-echo: chunk_delay_ms). */
  options?: Record<string, unknown>;
}

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

export interface ComputeOutput {
  text: string;
  finish_reason: string;
}

/** The result file of a completed job. */
export interface ComputeResponse {
  job_id: string;
  provider: string;
  model: string;
  output: ComputeOutput;
  usage: TokenUsage | null;
  /** Micro-USD actually charged: the cost of `usage`, at most `reserved`. */
  cost: number;
  /** Micro-USD that was reserved for the job: its cap. */
  reserved: number;
  /** Micro-USD the provider's own usage cost beyond the reservation (its overrun: not charged). */
  overrun: number;
  latency_ms: number;
  created_at: number;
  finished_at: number;
}

/** One line of jobs/<id>/stream. */
export interface ComputeChunk {
  delta: { text: string };
  finish_reason: string | null;
  usage: TokenUsage | null;
  /** On the last chunk of a job that failed or was cancelled. */
  error?: { code: string; message: string };
}

export type JobStatus = 'pending' | 'running' | 'streaming' | 'complete' | 'failed' | 'cancelled';
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['complete', 'failed', 'cancelled']);

/** Prices in micro-USD per million tokens (= pico-USD per token), so small prices stay integers. */
export interface Pricing {
  input_per_mtok: number;
  output_per_mtok: number;
}

export interface ModelInfo {
  id: string;
  context_length?: number;
  pricing?: Pricing;
  /** Higher is better; used by `prefer: quality`. */
  quality?: number;
}

export type HealthStatus = 'available' | 'degraded' | 'unavailable';

export interface ProviderHealth {
  status: HealthStatus;
  reason?: string;
  checked_at: number;
  latency_ms?: number;
}

export interface ProviderInfo {
  id: string;
  type: string;
  name: string;
  description: string;
  streaming: boolean;
  models: ModelInfo[];
  pricing: Pricing;
  latency: { ttft_ms: number; measured: boolean };
  /** Where it sends requests (never with credentials). */
  endpoint?: string;
  /** How it authenticates, never the secret itself. */
  auth?: string;
}

/** What a provider gives back when a job finishes. */
export interface ProviderResult {
  output: ComputeOutput;
  /** The provider's own token counts; null when it reported none (the engine estimates them). */
  usage: TokenUsage | null;
}

export interface ProviderRun {
  /** Streams a piece of output text as it arrives. */
  chunk(text: string): void;
  signal: AbortSignal;
}

export interface ComputeProvider {
  readonly id: string;
  info(): ProviderInfo;
  supports(model: string): boolean;
  health(signal?: AbortSignal): Promise<ProviderHealth>;
  /** The most output tokens the request can produce, when the provider knows better than max_tokens. */
  maxOutputTokens?(request: ComputeRequest): number;
  /** Checks provider-specific parts of a request at submit (EINVAL naming `path`). */
  validate?(request: ComputeRequest, path: string): void;
  /** Runs one request; rejects with an FsError (EREMOTEIO, ETIMEDOUT, ...) carrying the provider's message. */
  run(request: ComputeRequest, io: ProviderRun): Promise<ProviderResult>;
  close?(): Promise<void>;
}
