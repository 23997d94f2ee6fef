// Attainment: how much of each guarantee its volume actually got, as users can check it. The law
// says per tick how each guarantee in force fared (law.ts, Attained); this book adds the ticks up,
// per volume, direction and kind of guarantee (rate, latency), into the seconds it was in force
// and the seconds it was short (counters for Prometheus), and keeps the last hour by the minute
// for `qosctl volume show` (seconds kept, the worst moment). It lives beside the controller, in
// the periodic jobs' worker, and is lost on a restart, like the controller's limits.
import type { Attained } from './law';
import type { AttainmentEntry, AttainmentSummary } from '../model/attainment';

const HOUR_MINUTES = 60;

export class AttainmentBook {
  private readonly byVolume = new Map<string, AttainmentEntry[]>();
  private prunedMinute = 0;

  /** One tick's attainment, `seconds` long, ending at `nowMs`. */
  record(attained: readonly Attained[], seconds: number, nowMs: number): void {
    const minute = Math.floor(nowMs / 60_000);
    for (const a of attained) {
      const e = this.entry(a);
      e.seconds += seconds;
      if (a.short) e.shortSeconds += seconds;
      e.delivered = a.delivered;
      e.lastAt = nowMs;
      let m = e.minutes.at(-1);
      if (!m || m.minute !== minute) {
        m = { minute, seconds: 0, shortSeconds: 0, worst: Infinity, worstAt: nowMs };
        e.minutes.push(m);
        while (e.minutes.length > 0 && e.minutes[0]!.minute <= minute - HOUR_MINUTES) e.minutes.shift();
      }
      m.seconds += seconds;
      if (a.short) m.shortSeconds += seconds;
      if (a.delivered < m.worst) {
        m.worst = a.delivered;
        m.worstAt = nowMs;
      }
    }
    if (minute !== this.prunedMinute) this.prune(minute);
  }

  /** A volume's guarantees as far as they were ever in force (the scrape's counters). */
  of(volume: string): readonly AttainmentEntry[] {
    return this.byVolume.get(volume) ?? [];
  }

  /** The last hour of every guarantee of `volume` (all volumes when undefined). */
  summaries(nowMs: number, volume?: string): AttainmentSummary[] {
    const since = Math.floor(nowMs / 60_000) - HOUR_MINUTES;
    const lists = volume === undefined ? [...this.byVolume.values()] : [this.of(volume)];
    const out: AttainmentSummary[] = [];
    for (const list of lists) {
      for (const e of list) {
        const hour = e.minutes.filter((m) => m.minute > since);
        if (hour.length === 0) continue;
        const seconds = hour.reduce((s, m) => s + m.seconds, 0);
        const short = hour.reduce((s, m) => s + m.shortSeconds, 0);
        const worst = hour.reduce((w, m) => (m.worst < w.worst ? m : w));
        out.push({
          volume: e.volume, pool: e.pool, direction: e.direction, guarantee: e.guarantee,
          seconds, keptSeconds: seconds - short, worst: worst.worst, worstAt: new Date(worst.worstAt).toISOString(), delivered: e.delivered,
        });
      }
    }
    return out;
  }

  private entry(a: Attained): AttainmentEntry {
    let list = this.byVolume.get(a.volume);
    if (!list) this.byVolume.set(a.volume, (list = []));
    let e = list.find((x) => x.direction === a.direction && x.guarantee === a.guarantee);
    if (!e) {
      e = { volume: a.volume, pool: a.pool, direction: a.direction, guarantee: a.guarantee, seconds: 0, shortSeconds: 0, delivered: a.delivered, lastAt: 0, minutes: [] };
      list.push(e);
    }
    return e;
  }

  /** Guarantees not in force for an hour are forgotten (their volume detached, deleted or idle). */
  private prune(minute: number): void {
    this.prunedMinute = minute;
    const cutoff = (minute - HOUR_MINUTES) * 60_000;
    for (const [volume, list] of this.byVolume) {
      const kept = list.filter((e) => e.lastAt >= cutoff);
      if (kept.length === 0) this.byVolume.delete(volume);
      else if (kept.length !== list.length) this.byVolume.set(volume, kept);
    }
  }
}
