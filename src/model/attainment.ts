// What qosd records of how each guarantee fared (controller/attainment.ts keeps it; the scrape
// and the API show it).
import type { Direction } from './qos';

export interface AttainmentEntry {
  volume: string;
  pool: string;
  direction: Direction;
  guarantee: 'rate' | 'latency';
  /** Seconds the guarantee was in force (its volume doing IO there), since it was first seen. */
  seconds: number;
  /** Of those, the seconds it was short (controller/law.ts: ATTAINED_ABOVE). */
  shortSeconds: number;
  /** The part of it delivered at the last tick it was in force. */
  delivered: number;
  /** When it was last in force (ms since the epoch). */
  lastAt: number;
  /** The last hour, a bucket a minute, oldest first. */
  minutes: Minute[];
}

export interface Minute {
  /** Minutes since the epoch. */
  minute: number;
  seconds: number;
  shortSeconds: number;
  /** The least delivered in one tick of the minute, and when (ms since the epoch). */
  worst: number;
  worstAt: number;
}

/** The last hour of one guarantee, as `qosctl volume show` prints it. */
export interface AttainmentSummary {
  volume: string;
  pool: string;
  direction: Direction;
  guarantee: 'rate' | 'latency';
  /** Over the last hour: seconds in force, seconds kept (not short), the least delivered in a tick and when. */
  seconds: number;
  keptSeconds: number;
  worst: number;
  worstAt: string;
  delivered: number;
}
