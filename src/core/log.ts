/**
 * Readable log lines on stderr (journald adds its own timestamp under systemd,
 * but a terminal or a replay benefits from one). Levels filter noise.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(options: { level?: Level; write?: (line: string) => void; timestamps?: boolean } = {}): Logger {
  const min = ORDER[options.level ?? (process.env.PORTCULLIS_LOG_LEVEL as Level | undefined) ?? 'info'] ?? 1;
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Under systemd (JOURNAL_STREAM set) the journal stamps lines itself.
  const stamp = options.timestamps ?? !process.env.JOURNAL_STREAM;
  const emit = (level: Level, msg: string): void => {
    if (ORDER[level] < min) return;
    const prefix = level === 'info' ? '' : `${level.toUpperCase()}: `;
    write(stamp ? `${new Date().toISOString()} ${prefix}${msg}` : `${prefix}${msg}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
