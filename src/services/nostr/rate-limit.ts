/**
 * Per-sender token buckets: each (agent, sender) may deliver `perMinute` messages in a burst and then
 * one every 60/perMinute seconds, so a stranger on a public relay cannot make an agent tick without
 * bound. Buckets live in memory (a restart refills them); full ones are forgotten when many accumulate.
 */

export const DEFAULT_MESSAGES_PER_MINUTE = 10;
const FORGET_ABOVE = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class SenderRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Takes one token for `sender` at `agentId` allowing `perMinute`; false when the bucket is empty. */
  take(agentId: string, sender: string, perMinute: number = DEFAULT_MESSAGES_PER_MINUTE): boolean {
    if (!Number.isFinite(perMinute)) return true;
    const key = `${agentId} ${sender}`;
    const now = this.now();
    const bucket = this.refilled(this.buckets.get(key), perMinute, now);
    if (bucket.tokens < 1) {
      this.buckets.set(key, bucket);
      return false;
    }
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    if (this.buckets.size > FORGET_ABOVE) this.forgetFull(perMinute, now);
    return true;
  }

  private refilled(bucket: Bucket | undefined, perMinute: number, now: number): Bucket {
    if (!bucket) return { tokens: perMinute, at: now };
    const tokens = Math.min(perMinute, bucket.tokens + ((now - bucket.at) * perMinute) / 60_000);
    return { tokens, at: now };
  }

  /** A full bucket is the same as none: drop those, keeping memory bounded by the active senders. */
  private forgetFull(perMinute: number, now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (this.refilled(bucket, perMinute, now).tokens >= perMinute) this.buckets.delete(key);
    }
  }

  forgetAgent(agentId: string): void {
    const prefix = `${agentId} `;
    for (const key of this.buckets.keys()) if (key.startsWith(prefix)) this.buckets.delete(key);
  }
}
