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
  const start = Math.floor(min / step) * step;
  const ticks = [];
  for (let v = start; v <= max + step * 0.5; v += step) ticks.push(Number(v.toPrecision(6)));
  return ticks;
}

function tickLabel(v) {
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

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
  let xs = [];
  let ys = [];
  for (const points of series.values()) {
    xs = xs.concat(points.map((p) => p[0]));
    ys = ys.concat(points.map((p) => p[1]));
  }
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs));
  // Losses of very different sizes (reconstruction 500, KL 0.2): a log axis keeps every line readable.
  const yMin = Math.min(...ys);
  const yMax = Math.max(...ys);
  const log = yMin > 0 && yMax / yMin > 100;
  const ty = log ? Math.log10 : (v) => v;
  let yTicks;
  if (log) {
    yTicks = [];
    for (let k = Math.floor(Math.log10(yMin)); k <= Math.ceil(Math.log10(yMax)); k++) yTicks.push(10 ** k);
  } else yTicks = niceTicks(yMin, yMax);
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [ty(yTicks[0]), ty(yTicks[yTicks.length - 1])];
  const pad = { left: 56, right: 24, top: 28, bottom: 40 };  // right: room for the last x label
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const px = (x) => pad.left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const py = (y) => pad.top + plotH - ((ty(y) - y0) / (y1 - y0 || 1)) * plotH;

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
  ctx.fillText(log ? 'loss (log scale)' : 'loss', 0, 0);
  ctx.restore();

  // 3. one line per loss, legend on top
  let legendX = pad.left;
  const names = [...series.keys()];
  names.forEach((name, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = series.get(name);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([x, y], j) => (j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
    ctx.stroke();
    if (points.length === 1) {
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.arc(px(points[0][0]), py(points[0][1]), 3, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.fillStyle = colour;
    ctx.fillRect(legendX, 8, 14, 4);
    ctx.fillStyle = ink;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(name, legendX + 18, 10);
    legendX += 18 + ctx.measureText(name).width + 16;
  });
  return names;
}
