/** A share (0..1) as a percentage: whole from 10%, one decimal below (a small guarantee is not "0%"). */
export function percent(share: number): string {
  const p = share * 100;
  return `${p >= 10 || p === 0 ? Math.round(p) : Math.round(p * 10) / 10}%`;
}
