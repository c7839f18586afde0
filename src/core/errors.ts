/** Errors a sysadmin can act on: what went wrong, where, and what to do. */
export class PortcullisError extends Error {
  override name = 'PortcullisError';
  /** Process exit code to use when this error ends a command (2 = usage/config). */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** A configuration mistake: `file:line:column: what is wrong, and what is allowed`. */
export class ConfigError extends PortcullisError {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly problem: string,
  ) {
    super(`${file}:${line}:${column}: ${problem}`, 2);
  }
}

/** Several configuration mistakes reported together, so the admin can fix them in one go. */
export class ConfigErrors extends PortcullisError {
  override name = 'ConfigErrors';
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'), 2);
  }
}

export class UsageError extends PortcullisError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, 2);
  }
}
