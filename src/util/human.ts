// Figures as a person reads them in a table: three significant digits and a unit. Sizes in
// binary units (what `df -h` and Kubernetes' Gi show), rates in decimal ones (what drive makers and
// Prometheus dashboards show); exact values are in -o json.

function scaled(n: number, step: number, units: readonly string[]): string {
  let v = n;
  let i = 0;
  while (Math.abs(v) >= step && i < units.length - 1) {
    v /= step;
    i++;
  }
  const digits = i === 0 || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits).replace(/\.0+$|(\.\d*?)0+$/, '$1')}${units[i]}`;
}

/** Bytes: "512Mi", "1.5Gi", "77.3Gi". */
export function humanBytes(n: number): string {
  return scaled(n, 1024, ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei']);
}

/** Bytes per second: "200M/s", "1.61G/s". */
export function humanRate(n: number): string {
  return `${scaled(n, 1000, ['', 'k', 'M', 'G', 'T', 'P'])}/s`;
}

/** A count (IOPS): "850", "20k", "1.2M". */
export function humanCount(n: number): string {
  return scaled(n, 1000, ['', 'k', 'M', 'G']);
}
