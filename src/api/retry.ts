/**
 * Retries with backoff for work that is safe to repeat (each attempt is one whole transaction that
 * either committed or did not) when the database is unreachable or busy (statement timeout,
 * deadlock, serialization failure, lock not available: a VM's end waiting over 10 s for its
 * tenant's row on a loaded machine was otherwise given up at once, leaving the VM `running` with
 * no worker); other errors are thrown at once.
 */
import { isDatabaseBusy, isDatabaseUnreachable } from './errors.js';

export interface RetryOptions { attempts?: number; firstDelayMs?: number; maxDelayMs?: number }

export async function withRetry<T>(work: () => Promise<T>, { attempts = 6, firstDelayMs = 50, maxDelayMs = 2000 }: RetryOptions = {}): Promise<T> {
  let delay = firstDelayMs;
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (e) {
      if (i >= attempts || !(isDatabaseUnreachable(e) || isDatabaseBusy(e))) throw e;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(maxDelayMs, delay * 2);
    }
  }
}
