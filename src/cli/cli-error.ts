/** A user error on the command line: printed as one line, exit status 2. */
export class CliError extends Error {
  constructor(message: string, readonly status = 2) { super(message); }
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Runs the command; resolves to the process exit status. Raises CliError for bad input. */
  run(args: string[]): Promise<number>;
}
