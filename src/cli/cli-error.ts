/** A user error on the command line: printed as one line, exit status 2. */
export class CliError extends Error {
  constructor(message: string, readonly status = 2) { super(message); }
}
