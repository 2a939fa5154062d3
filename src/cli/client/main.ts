/**
 * A stand-alone entry for the client commands (`node dist/cli/client/main.js hosts ls`), until
 * they are registered on the main hvsim program with registerClientCommands.
 */
import { runClient } from './index.js';

runClient(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`hvsim: internal error: ${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 70;
});
