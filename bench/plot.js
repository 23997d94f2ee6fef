#!/usr/bin/env node
// node bench/plot.js: the contention benchmarks' results (bench/results/contention.json and
// contention-matrix.json) drawn as rate-over-time charts, one SVG per case, written to
// docs/img/. Each run of a case has four phases, in this order: the neighbour alone; the victims
// started beside it (pressed); the victims stopped (the neighbour alone again); the victims
// started again. The results keep each phase's measured rate (IOPS), so each phase is drawn as a
// step at that rate, a panel per setting (no QoS, static cap, qosd), the victims' minimum dashed.
// A phase the benchmark did not measure for a line is left empty. No dependencies: plain SVG.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const RESULTS = path.join(__dirname, 'results');
const OUT = path.join(__dirname, '..', 'docs', 'img');
const PHASES = ['neighbour alone', 'victims start', 'victims stop', 'victims again'];
const PANEL = { w: 250, h: 170, left: 44, top: 26, bottom: 34, right: 10 };
const COLOURS = { neighbour: '#d9822b', victims: ['#2b6cb0', '#2f855a'], min: '#555' };

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One setting's lines: { label, group, colour, values: [rate or undefined per phase] }, and its minimums. */
function panel(x0, title, lines, mins, yMax) {
  const { w, h, left, top, bottom, right } = PANEL;
  const plotW = w - left - right;
  const plotH = h - top - bottom;
  const y = (v) => top + plotH - (v / yMax) * plotH;
  const step = plotW / PHASES.length;
  const out = [`<g transform="translate(${x0},0)">`, `<text x="${left + plotW / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`];
  for (const t of [0, 0.5, 1]) {
    const v = Math.round(yMax * t);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${left - 4}" y="${y(v) + 4}" text-anchor="end" font-size="10">${v}</text>`);
  }
  PHASES.forEach((p, i) => {
    out.push(`<line x1="${left + i * step}" x2="${left + i * step}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${left + (i + 0.5) * step}" y="${top + plotH + 12}" text-anchor="middle" font-size="8">${esc(p.split(' ')[0])}</text>`);
    out.push(`<text x="${left + (i + 0.5) * step}" y="${top + plotH + 22}" text-anchor="middle" font-size="8">${esc(p.split(' ').slice(1).join(' '))}</text>`);
  });
  for (const m of mins) out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(m)}" y2="${y(m)}" stroke="${COLOURS.min}" stroke-dasharray="4 3"/>`);
  for (const line of lines) {
    // Lines that share a phase (two victims) split its width, so neither hides the other.
    const share = lines.filter((l) => l.group === line.group);
    const k = share.indexOf(line);
    const part = step / share.length;
    line.values.forEach((v, i) => {
      if (v === undefined) return;
      const x1 = left + i * step + k * part;
      out.push(`<line x1="${x1 + 2}" x2="${x1 + part - 2}" y1="${y(v)}" y2="${y(v)}" stroke="${line.colour}" stroke-width="3"/>`);
      out.push(`<text x="${x1 + part / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="9" fill="${line.colour}">${v}</text>`);
    });
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`, '</g>');
  return out.join('\n');
}

function chart(title, subtitle, settings) {
  const top = Math.max(...settings.flatMap((s) => [...s.lines.flatMap((l) => l.values.filter((v) => v !== undefined)), ...s.mins])) * 1.12;
  const unit = 10 ** Math.floor(Math.log10(top)) / 2;
  const yMax = Math.ceil(top / unit) * unit; // a round top, so the ticks read as round numbers
  const legendY = PANEL.h + 14;
  const names = [...new Map(settings.flatMap((s) => s.lines).map((l) => [l.label, l.colour])).entries()];
  const width = PANEL.w * settings.length;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${legendY + 36}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<g transform="translate(0,18)">`,
    ...settings.map((s, i) => panel(i * PANEL.w, s.setting, s.lines, s.mins, yMax)),
    `</g>`,
    `<text x="6" y="13" font-weight="bold">${esc(title)}</text>`,
    `<text x="${width - 6}" y="13" text-anchor="end" font-size="10">${esc(subtitle)}</text>`,
  ];
  let lx = 10;
  for (const [label, colour] of [...names, ['minimum (qosd)', COLOURS.min]]) {
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${legendY + 24}" y2="${legendY + 24}" stroke="${colour}" stroke-width="3"${label.startsWith('minimum') ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(`<text x="${lx + 22}" y="${legendY + 28}">${esc(label)}</text>`);
    lx += 30 + label.length * 6.2;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
const written = [];
function write(name, svg) {
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, name), svg);
  written.push(path.join('docs', 'img', name));
}

// The single-drive benchmark (npm run bench:vm): one victim, its rate pressed and back; the
// neighbour alone before and after (its rate while pressed is not kept).
const single = JSON.parse(fs.readFileSync(path.join(RESULTS, 'contention.json'), 'utf8'));
for (const io of ['read', 'write']) {
  const rows = single.rows.filter((r) => r.io === io && r.setting !== 'victim alone');
  const settings = rows.map((r) => ({
    setting: r.setting,
    mins: r.victimMin ? [r.victimMin] : [],
    lines: [
      { label: 'neighbour (best effort)', group: 'neighbour', colour: COLOURS.neighbour, values: [r.neighbourBefore, undefined, r.neighbourAfter, undefined] },
      { label: `victim (${io}s)`, group: 'victims', colour: COLOURS.victims[0], values: [undefined, r.victimPressed, undefined, r.victimBack] },
    ],
  }));
  write(`contention-${io}.svg`, chart(`A ${io} victim beside a best-effort neighbour, IOPS`, `one drive held to ${single.qemuThrottleIops} IOPS, ${single.date.slice(0, 10)}`, settings));
}

// The matrix (npm run bench:vm:matrix): every case, one or two victims, the neighbour throughout.
const matrix = JSON.parse(fs.readFileSync(path.join(RESULTS, 'contention-matrix.json'), 'utf8'));
for (const c of [...new Set(matrix.rows.map((r) => r.case))]) {
  const settings = matrix.rows.filter((r) => r.case === c).map((r) => ({
    setting: r.setting,
    mins: r.mins,
    lines: [
      { label: 'neighbour (best effort)', group: 'neighbour', colour: COLOURS.neighbour, values: [r.neighbourBefore, r.neighbourPressed, r.neighbourAfter, undefined] },
      ...r.victimsPressed.map((v, i) => ({ label: r.victimsPressed.length > 1 ? `victim ${i + 1}` : 'victim', group: 'victims', colour: COLOURS.victims[i], values: [undefined, v, undefined, r.victimsBack[i]] })),
    ],
  }));
  write(`matrix-${slug(c)}.svg`, chart(`${c}, IOPS`, `a ${matrix.qemuThrottleIops}-IOPS drive budget, ${matrix.date.slice(0, 10)}`, settings));
}
// The latency benchmark (npm run bench:vm:latency): the trade-off as the reader's target is
// tightened against the read flood, each setting a point (the neighbour's throughput while the
// victim ran, the victim's p99), beside the victim's p99 alone and 1.3 times it. Written beside
// the results it is drawn from: bench/results/latency-tradeoff.svg.
const latencyFile = path.join(RESULTS, 'latency.json');
if (fs.existsSync(latencyFile)) {
  const lat = JSON.parse(fs.readFileSync(latencyFile, 'utf8'));
  // p99 after the victim's first second (the controller's reaction), where the run recorded it;
  // the whole run's p99 beside it in grey.
  const steady = (s) => (s.steady ? s.steady.p99Ms : s.p99Ms);
  const pts = lat.sweep.map((s) => ({ x: s.neighbourPressed, y: steady(s), whole: s.p99Ms, label: s.factor === null ? 'rate only' : `${s.factor}× mean alone` }));
  const alone = steady(lat.alone.reader);
  const W = 640, H = 360, L = 60, R = 20, T = 44, B = 50;
  const xMax = Math.max(...pts.map((p) => p.x)) * 1.15 || 1;
  const yMax = Math.max(alone * 1.3, ...pts.map((p) => Math.max(p.y, p.whole))) * 1.15;
  const X = (v) => L + (v / xMax) * (W - L - R);
  const Y = (v) => H - B - (v / yMax) * (H - T - B);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="6" y="16" font-weight="bold">${esc("A paced reader's p99 against a random-read flood's throughput, as its latency target tightens")}</text>`,
    `<text x="6" y="30" font-size="10">${esc(`one drive held to ${lat.qemuThrottleIops} IOPS (4 KiB units), ${lat.date.slice(0, 10)}; npm run bench:vm:latency`)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">neighbour throughput while the victim runs (4 KiB IOs/s)</text>`,
    `<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">victim p99 (ms)</text>`,
    `<text x="${W - R}" y="${T - 2}" text-anchor="end" font-size="10">${esc(lat.reactionMs ? 'blue: after the first second; grey: the whole run' : 'the whole run')}</text>`,
  ];
  for (const t of [0, 0.5, 1]) {
    parts.push(`<text x="${L - 4}" y="${Y(yMax * t) + 4}" text-anchor="end">${(yMax * t).toFixed(1)}</text>`);
    parts.push(`<text x="${X(xMax * t)}" y="${H - B + 14}" text-anchor="middle">${Math.round(xMax * t)}</text>`);
  }
  for (const [v, label, dash] of [[alone, 'p99 alone', ''], [alone * 1.3, '1.3 × alone', ' stroke-dasharray="4 3"']]) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#555"${dash}/>`);
    parts.push(`<text x="${W - R - 2}" y="${Y(v) - 3}" text-anchor="end" font-size="10">${label}</text>`);
  }
  if (lat.reactionMs) parts.push(`<polyline fill="none" stroke="#aaa" stroke-dasharray="3 2" points="${pts.map((p) => `${X(p.x)},${Y(p.whole)}`).join(' ')}"/>`);
  parts.push(`<polyline fill="none" stroke="#2b6cb0" points="${pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(' ')}"/>`);
  for (const p of pts) {
    parts.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="4" fill="#2b6cb0"/>`);
    parts.push(`<text x="${X(p.x) + 6}" y="${Y(p.y) - 6}" font-size="10">${esc(p.label)}</text>`);
  }
  parts.push('</svg>');
  fs.writeFileSync(path.join(RESULTS, 'latency-tradeoff.svg'), parts.join('\n') + '\n');
  written.push(path.join('bench', 'results', 'latency-tradeoff.svg'));
}
console.log(written.join('\n'));
