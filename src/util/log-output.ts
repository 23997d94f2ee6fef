// Where a process's log lines go, and in what shape: JSON lines for journald and log shippers
// (the default), or one readable line per record for a person at a terminal (`npm start`,
// `qosd --log-format pretty`). Both carry the same fields; only the rendering differs.
import pino, { type Logger } from 'pino';


const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// pino's own fields, shown in the line's head (time, level, message) or not at all.
const HEAD_FIELDS = new Set(['time', 'level', 'msg', 'pid', 'hostname']);

export function makeLogger(level: string, format: 'json' | 'pretty'): Logger {
  if (format === 'json') return pino({ level });
  return pino({ level }, { write: (line: string) => process.stdout.write(prettyLine(line)) });
}

/** One JSON record as `HH:MM:SS.mmm LEVEL message key=value …`, an error's stack on the lines after. */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 23) : '';
  const level = (LEVEL_NAMES[record.level as number] ?? String(record.level)).padEnd(5);
  const fields: string[] = [];
  let stack = '';
  for (const [key, value] of Object.entries(record)) {
    if (HEAD_FIELDS.has(key) || value === undefined) continue;
    if (key === 'err' && value && typeof value === 'object' && 'stack' in value) {
      stack = `\n    ${String((value as { stack: unknown }).stack).replace(/\n/g, '\n    ')}`;
      continue;
    }
    fields.push(`${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  }
  const message = typeof record.msg === 'string' ? record.msg : '';
  return `${[time, level, message, ...fields].filter(Boolean).join(' ')}${stack}\n`;
}
