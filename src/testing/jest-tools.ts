/** Jest helpers for differential tests (test-only: excluded from the build). */
import { Tool, toolsAvailable } from './toolchain.js';

/** `describe` when the tools exist, `describe.skip` otherwise (fails under CI=true). */
export const describeWithTools = (tools: Tool[]): jest.Describe =>
  (toolsAvailable(...tools) ? describe : describe.skip);
