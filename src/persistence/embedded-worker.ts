/**
 * The worker thread of the embedded database (startEmbeddedPostgres with `thread: true`): opens
 * PGlite and its socket server with the options in workerData, posts { kind: 'open', url, cpuMs }, and
 * on the message 'stop' closes both (flushing the database to disk) and posts { kind: 'stopped' }.
 * A failure to open or to close is posted as { kind: 'failed', message }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openEmbedded, type EmbeddedOptions, type EmbeddedWorkerMessage } from './embedded.js';
import { threadCpuMs } from './thread-cpu.js';

const port = parentPort!;
const post = (m: EmbeddedWorkerMessage) => port.postMessage(m);
try {
  const db = await openEmbedded(workerData as EmbeddedOptions);
  port.on('message', (m: unknown) => {
    if (m !== 'stop') return;
    db.stop().then(() => post({ kind: 'stopped' }), (e: unknown) => post({ kind: 'failed', message: e instanceof Error ? e.message : String(e) }))
      .finally(() => port.close());
  });
  post({ kind: 'open', url: db.url, cpuMs: threadCpuMs() });
} catch (e) {
  post({ kind: 'failed', message: e instanceof Error ? e.message : String(e) });
  port.close();
}
