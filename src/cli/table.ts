// Plain-text tables for qosctl's default output.
function write(line: string): void {
  process.stdout.write(`${line.trimEnd()}\n`);
}

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  write(fmt(headers));
  for (const r of rows) write(fmt(r));
}

export function printKeyValues(pairs: [string, string][]): void {
  const w = Math.max(...pairs.map(([k]) => k.length));
  for (const [k, v] of pairs) write(`${`${k}:`.padEnd(w + 2)}${v}`);
}
