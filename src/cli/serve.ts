import { CliError, Command } from './cli-error.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the hvsim service (same as npm start; configured by environment variables, see README)',
  usage: 'hvsim serve',
  async run(args) {
    if (args.length) throw new CliError(`usage: ${this.usage}`);
    const { runServiceFromEnv } = await import('../service-main.js');
    await runServiceFromEnv();
    await new Promise(() => { /* runs until a signal stops the process */ });
    return 0;
  },
};
