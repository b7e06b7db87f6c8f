// The loss chart: one line per loss name over training steps, drawn on a <canvas>.

const COLOURS = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#0a7480', '#57606a'];

/** Values a loop reports beside its losses (speed, learning rate): not drawn as losses. */
export const NOT_A_LOSS = /per_s(ec)?$|per_second|throughput|seconds|^lr$|learning_rate/i;

/** Points per loss name from a progress history [[step, {name: value}], ...]. */
export function seriesFromHistory(history) {
  const series = new Map();
  for (const entry of history || []) {
    let step;
    let losses;
    if (Array.isArray(entry)) [step, losses] = entry;
    else if (entry && typeof entry === 'object') ({ step, losses } = entry);
    if (typeof step !== 'number' || !losses || typeof losses !== 'object') continue;
    for (const [name, value] of Object.entries(losses)) {
      if (typeof value !== 'number' || !isFinite(value) || NOT_A_LOSS.test(name)) continue;
      if (!series.has(name)) series.set(name, []);
      series.get(name).push([step, value]);
    }
  }
  return series;
}

function niceTicks(min, max, count = 5) {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  // From the step at or below min to the step at or above max: every value lies on the axis.
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(6)));
  return ticks;
}

function tickLabel(v) {
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/** The q-th quantile (0..1) of sorted numbers, interpolated. */
function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * The y range to show: a linear axis over the 2nd..98th percentile of the values after the first
 * few steps (the early spike of a loss would flatten everything else), widened to take in every
 * line's latest value, and padded a little. `clipped`: some points lie outside it.
 */
export function robustRange(series) {
  const settled = [];
  const all = [];
  const latest = [];
  for (const points of series.values()) {
    const skip = points.length >= 5 ? Math.max(1, Math.floor(points.length * 0.1)) : 0;
    points.forEach(([, y], j) => {
      all.push(y);
      if (j >= skip) settled.push(y);
    });
    latest.push(points[points.length - 1][1]);
  }
  const sorted = (settled.length ? settled : all).slice().sort((a, b) => a - b);
  let lo = Math.min(quantile(sorted, 0.02), ...latest);
  let hi = Math.max(quantile(sorted, 0.98), ...latest);
  const span = hi - lo || Math.abs(hi) * 0.1 || 1;
  lo -= span * 0.05;
  hi += span * 0.05;
  // A loss that never goes below 0 gets no negative ticks.
  if (lo < 0 && all.every((y) => y >= 0)) lo = 0;
  const clipped = all.some((y) => y < lo || y > hi);
  return { lo, hi, clipped };
}

/** The drawing order: `loss` (the total, often equal to one of its parts) last, so it is on top. */
const TOTAL = 'loss';

/** Draw the chart; returns the loss names drawn (for the legend / text alternative). */
export function drawLossChart(canvas, history) {
  const series = seriesFromHistory(history);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 260;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const ink = style.color || '#222';
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = ink;
  ctx.strokeStyle = ink;
  if (!series.size) {
    ctx.textAlign = 'center';
    ctx.fillText('No loss values yet', width / 2, height / 2);
    return [];
  }
  const names = [...series.keys()];
  const colourOf = new Map(names.map((name, i) => [name, COLOURS[i % COLOURS.length]]));
  const dashOf = (name) => (name === TOTAL && series.size > 1 ? [7, 5] : []);
  const widthOf = (name) => (name === TOTAL && series.size > 1 ? 3 : 2);

  // The legend first: its rows (wrapped to the canvas width) decide where the plot starts.
  const legend = [];
  let lx = 56;
  let row = 0;
  for (const name of names) {
    const w = 26 + ctx.measureText(name).width;
    if (lx > 56 && lx + w > width - 8) {
      row += 1;
      lx = 56;
    }
    legend.push({ name, x: lx, y: 10 + row * 16 });
    lx += w + 14;
  }

  let xs = [];
  for (const points of series.values()) xs = xs.concat(points.map((p) => p[0]));
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs));
  // A linear axis: the curve's shape is what matters while watching a training.
  const range = robustRange(series);
  const yTicks = niceTicks(range.lo, range.hi);
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  // Points off the axis are cut at its edge; a note says so ("early" when they all are in the first fifth).
  const off = [...series.values()].flatMap((points) => points.filter(([, y]) => y < y0 || y > y1));
  const clipNote = !off.length ? '' : off.every(([x]) => x <= x0 + (x1 - x0) * 0.2) ? 'early values cut off' : 'some values cut off';
  const pad = { left: 56, right: 24, top: 24 + row * 16, bottom: 40 };  // right: room for the last x label
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const px = (x) => pad.left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const py = (y) => pad.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;

  // 1. grid and tick labels
  ctx.lineWidth = 1;
  ctx.globalAlpha = 0.15;
  for (const t of yTicks) {
    ctx.beginPath();
    ctx.moveTo(pad.left, py(t));
    ctx.lineTo(pad.left + plotW, py(t));
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of yTicks) ctx.fillText(tickLabel(t), pad.left - 6, py(t));
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of xTicks) ctx.fillText(tickLabel(t), px(t), pad.top + plotH + 6);

  // 2. axes and axis labels
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, pad.top + plotH);
  ctx.lineTo(pad.left + plotW, pad.top + plotH);
  ctx.stroke();
  ctx.fillText('step', pad.left + plotW / 2, height - 16);
  ctx.save();
  ctx.translate(14, pad.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('loss', 0, 0);
  ctx.restore();
  if (clipNote) {
    ctx.save();
    ctx.globalAlpha = 0.75;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.fillText(clipNote, pad.left + plotW, pad.top + 2);
    ctx.restore();
  }

  // 3. one line per loss, clipped to the plot; the total last (on top), thicker and dashed
  const order = names.filter((n) => n !== TOTAL).concat(names.includes(TOTAL) ? [TOTAL] : []);
  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.left, pad.top - 2, plotW + 2, plotH + 4);
  ctx.clip();
  ctx.lineJoin = 'round';
  ctx.lineCap = 'round';
  for (const name of order) {
    const colour = colourOf.get(name);
    const points = series.get(name);
    ctx.strokeStyle = colour;
    ctx.lineWidth = widthOf(name);
    ctx.setLineDash(dashOf(name));
    ctx.beginPath();
    points.forEach(([x, y], j) => (j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
    ctx.stroke();
    if (points.length === 1) {
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.arc(px(points[0][0]), py(points[0][1]), 3, 0, Math.PI * 2);
      ctx.fill();
    }
  }
  ctx.restore();

  // 4. the legend: a short line in each loss's colour and dash, then its name
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  for (const { name, x, y } of legend) {
    ctx.strokeStyle = colourOf.get(name);
    ctx.lineWidth = widthOf(name);
    ctx.setLineDash(dashOf(name).length ? [5, 3] : []);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 20, y);
    ctx.stroke();
    ctx.fillStyle = ink;
    ctx.fillText(name, x + 26, y);
  }
  ctx.setLineDash([]);
  return names;
}
