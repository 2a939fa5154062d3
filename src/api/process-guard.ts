/**
 * The process-level safety net: a promise rejected with nobody to handle it, or an exception thrown
 * outside any request, is logged (one line, the error's message and stack) and the service keeps
 * serving. Every background path handles its own errors; this only catches what slips through,
 * and counts it so an operator (and a test) can see it happened.
 */
import { Logger } from '@nestjs/common';

let installed = false;
export const processGuard = { unhandledRejections: 0, uncaughtExceptions: 0 };

export function installProcessGuard(log: Pick<Logger, 'error'> = new Logger('Process')): void {
  if (installed) return;
  installed = true;
  const text = (e: unknown) => (e instanceof Error ? e.stack ?? e.message : String(e));
  process.on('unhandledRejection', (reason) => {
    processGuard.unhandledRejections++;
    log.error(`unhandled promise rejection (the service keeps serving): ${text(reason)}`);
  });
  process.on('uncaughtException', (e) => {
    processGuard.uncaughtExceptions++;
    log.error(`uncaught exception (the service keeps serving): ${text(e)}`);
  });
}
