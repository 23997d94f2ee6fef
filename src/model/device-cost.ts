// One device, one budget. Every IO takes a share of the device's time, by direction and size; a
// linear model, as blk-iocost uses: an IO costs `perIo` seconds plus `perByte` seconds for each of
// its bytes, with separate coefficients for reads and writes. A rate vector (rIOPS, wIOPS, rB/s,
// wB/s) then costs
//
//   cost = rIOPS·read.perIo + rB/s·read.perByte + wIOPS·write.perIo + wB/s·write.perByte
//
// seconds of device time per second: 1 is the whole device. The coefficients come from the pool's
// four corner figures (4 KiB random IOPS and 1 MiB sequential bandwidth, each direction), which
// calibration measures or the config states: an IO of SMALL bytes at the IOPS figure and one of
// LARGE bytes at the bandwidth figure each fill the device, so per direction
//
//   perIo + SMALL·perByte = 1/IOPS      perIo + LARGE·perByte = LARGE/Bps
//
// A guarantee is priced at the corners the same way: minReadIops m takes m/IOPS of the device (its
// IOs at 4 KiB), minReadBps b takes b/Bps (in large IOs), and a volume's share is the sum over its
// guarantees, which is what it may cost at most when it splits its IO between small and large.
import { DIMENSIONS, type Dimension, type Figures } from './qos';

export const SMALL_IO_BYTES = 4096;
export const LARGE_IO_BYTES = 1 << 20;

export interface DirectionCost {
  /** Seconds of device time per IO, and per byte of it. */
  perIo: number;
  perByte: number;
}

export interface DeviceCost {
  read: DirectionCost | undefined;
  write: DirectionCost | undefined;
}

function direction(iops: number | undefined, bps: number | undefined): DirectionCost | undefined {
  if (iops && bps) {
    // Two corners, two unknowns; a drive whose large IOs are no dearer per byte than small ones
    // (not seen, but a config can say so) is all per-IO cost.
    const perByte = Math.max(0, (LARGE_IO_BYTES / bps - 1 / iops) / (LARGE_IO_BYTES - SMALL_IO_BYTES));
    return { perIo: Math.max(0, 1 / iops - SMALL_IO_BYTES * perByte), perByte };
  }
  if (iops) return { perIo: 1 / iops, perByte: 0 };
  if (bps) return { perIo: 0, perByte: 1 / bps };
  return undefined;
}

/** The cost model of a pool with these capacity figures. */
export function deviceCost(capacity: Figures): DeviceCost {
  return { read: direction(capacity.readIops, capacity.readBps), write: direction(capacity.writeIops, capacity.writeBps) };
}

/** What IO at these rates costs the device, as a fraction of its time (a direction without figures counts nothing). */
export function costOf(model: DeviceCost, rate: Figures): number {
  const r = model.read;
  const w = model.write;
  return (
    (r ? (rate.readIops ?? 0) * r.perIo + (rate.readBps ?? 0) * r.perByte : 0) +
    (w ? (rate.writeIops ?? 0) * w.perIo + (rate.writeBps ?? 0) * w.perByte : 0)
  );
}

export interface ShareParts {
  /** The guarantee's share of the device (0..). */
  total: number;
  /** Per guaranteed dimension: its figure and its share. */
  parts: { dimension: Dimension; figure: number; share: number }[];
  /** Guaranteed dimensions the pool has no capacity figure for (they cannot be priced). */
  unpriced: Dimension[];
}

/** The share of the device a guarantee takes: Σ min/capacity over its dimensions. */
export function shareOf(capacity: Figures, min: Figures): ShareParts {
  const out: ShareParts = { total: 0, parts: [], unpriced: [] };
  for (const d of DIMENSIONS) {
    const m = min[d];
    if (!m) continue;
    const c = capacity[d];
    if (!c) {
      out.unpriced.push(d);
      continue;
    }
    out.parts.push({ dimension: d, figure: m, share: m / c });
    out.total += m / c;
  }
  return out;
}

/**
 * How well the model predicts a mixed workload run flat out on the device: the rates measured,
 * what the model says they cost (1 would be exact: the device was full), and the throughput it
 * predicts for that mix against the throughput measured, as an error in percent.
 */
export interface MixCheck {
  name: string;
  rates: Figures;
  cost: number;
  predictedIops: number;
  measuredIops: number;
  errorPct: number;
}

export function mixCheck(name: string, model: DeviceCost, rates: Figures): MixCheck {
  const cost = costOf(model, rates);
  const measuredIops = (rates.readIops ?? 0) + (rates.writeIops ?? 0);
  const predictedIops = cost > 0 ? measuredIops / cost : 0;
  const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
  return {
    name,
    rates,
    cost: round(cost, 4),
    predictedIops: Math.round(predictedIops),
    measuredIops: Math.round(measuredIops),
    errorPct: measuredIops > 0 ? round(((predictedIops - measuredIops) / measuredIops) * 100, 1) : 0,
  };
}
