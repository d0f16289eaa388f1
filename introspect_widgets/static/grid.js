// GridView: a grid of units coloured by a value (SOM maps, confusion matrices, ...).
// Plain ES module loaded by anywidget; no build step.
// Model traits: values (2-D, null = empty unit), labels (2-D tooltip text), text (2-D text
// drawn in cells), selected ([[row, col], ...], written back on click), marks ([[row, col], ...]
// outlined), colormap, vmin, vmax, cell_size, multiple, title.

const MAPS = {
  viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
  magma: [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]],
  greys: [[250, 250, 250], [20, 20, 20]],
  blues: [[247, 251, 255], [107, 174, 214], [8, 48, 107]],
  coolwarm: [[59, 76, 192], [221, 221, 221], [180, 4, 38]],
};
const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const EMPTY = "#e8e8e8";

function rgb(c) {
  return `rgb(${Math.round(c[0])},${Math.round(c[1])},${Math.round(c[2])})`;
}

export function colorOf(name, t, value) {
  if (name === "tab10") {
    return TAB10[((Math.round(value) % 10) + 10) % 10];
  }
  const stops = MAPS[name] || MAPS.viridis;
  if (!Number.isFinite(t)) t = 0.5;
  t = Math.min(1, Math.max(0, t));
  const x = t * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return rgb([a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])]);
}

function textColor(fill) {
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(fill);
  if (!m) return "#fff";
  const lum = 0.299 * m[1] + 0.587 * m[2] + 0.114 * m[3];
  return lum > 150 ? "#111" : "#fff";
}

function range(values, vmin, vmax) {
  let lo = Infinity, hi = -Infinity;
  for (const row of values) {
    for (const v of row) {
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (vmin !== null && vmin !== undefined) lo = vmin;
  if (vmax !== null && vmax !== undefined) hi = vmax;
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

function fmt(v) {
  if (v === null || v === undefined) return "empty";
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(2) : v.toFixed(3);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "introspect-grid";
  root.style.cssText = "position:relative;display:inline-block;font:12px sans-serif;";
  const title = document.createElement("div");
  title.style.cssText = "font-weight:bold;margin-bottom:4px;";
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "display:block;cursor:pointer;";
  const bar = document.createElement("canvas");
  bar.style.cssText = "display:block;margin-top:4px;";
  const barLabels = document.createElement("div");
  barLabels.style.cssText = "display:flex;justify-content:space-between;color:#444;";
  const tip = document.createElement("div");
  tip.className = "introspect-grid-tooltip";
  tip.style.cssText = "position:absolute;pointer-events:none;background:rgba(30,30,30,.9);" +
    "color:#fff;padding:3px 6px;border-radius:3px;white-space:pre;display:none;z-index:10;";
  root.append(title, canvas, bar, barLabels, tip);
  el.appendChild(root);

  let hover = null;

  function dims() {
    const values = model.get("values") || [];
    const rows = values.length;
    const cols = rows ? Math.max(...values.map((r) => r.length)) : 0;
    return [values, rows, cols];
  }

  function draw() {
    const [values, rows, cols] = dims();
    const size = Math.max(2, model.get("cell_size") || 16);
    const cmap = model.get("colormap");
    const [lo, hi] = range(values, model.get("vmin"), model.get("vmax"));
    const text = model.get("text") || [];
    const selected = model.get("selected") || [];
    const marks = model.get("marks") || [];
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(cols * size, 1), h = Math.max(rows * size, 1);
    canvas.width = w * dpr; canvas.height = h * dpr;
    canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
    canvas.dataset.rows = rows; canvas.dataset.cols = cols;
    root.dataset.selected = JSON.stringify(selected);
    title.textContent = model.get("title") || "";
    title.style.display = title.textContent ? "block" : "none";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.font = `${Math.max(8, Math.floor(size * 0.45))}px sans-serif`;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = values[r][c];
        const empty = v === null || v === undefined;
        const fill = empty ? EMPTY : colorOf(cmap, (v - lo) / (hi - lo), v);
        ctx.fillStyle = fill;
        ctx.fillRect(c * size, r * size, size, size);
        const t = text[r] && text[r][c];
        if (t && size >= 12) {
          ctx.fillStyle = empty ? "#555" : textColor(fill);
          ctx.fillText(String(t), c * size + size / 2, r * size + size / 2 + 0.5);
        }
      }
    }
    if (size >= 6 && rows * cols <= 10000) {
      ctx.strokeStyle = "rgba(255,255,255,0.35)"; ctx.lineWidth = 1;
      for (let r = 0; r <= rows; r++) { ctx.beginPath(); ctx.moveTo(0, r * size); ctx.lineTo(w, r * size); ctx.stroke(); }
      for (let c = 0; c <= cols; c++) { ctx.beginPath(); ctx.moveTo(c * size, 0); ctx.lineTo(c * size, h); ctx.stroke(); }
    }
    const outline = (cells, color, width) => {
      ctx.strokeStyle = color; ctx.lineWidth = width;
      for (const rc of cells) {
        if (!rc || rc.length < 2) continue;
        ctx.strokeRect(rc[1] * size + width / 2, rc[0] * size + width / 2, size - width, size - width);
      }
    };
    outline(marks, "#ff00ff", Math.max(1, size / 8));
    outline(selected, "#000", Math.max(2, size / 6));
    outline(selected, "#fff", 1);
    if (hover) outline([hover], "rgba(0,0,0,0.6)", 1);

    // colour bar
    if (cmap === "tab10" || !rows) {
      bar.style.display = "none"; barLabels.style.display = "none";
    } else {
      const bw = Math.max(w, 120), bh = 8;
      bar.style.display = "block"; barLabels.style.display = "flex";
      bar.width = bw * dpr; bar.height = bh * dpr;
      bar.style.width = `${bw}px`; bar.style.height = `${bh}px`;
      barLabels.style.width = `${bw}px`;
      const b = bar.getContext("2d");
      b.setTransform(dpr, 0, 0, dpr, 0, 0);
      for (let x = 0; x < bw; x++) {
        b.fillStyle = colorOf(cmap, x / (bw - 1), 0);
        b.fillRect(x, 0, 1, bh);
      }
      barLabels.textContent = "";
      for (const v of [lo, hi]) {
        const s = document.createElement("span");
        s.textContent = fmt(v);
        barLabels.appendChild(s);
      }
    }
  }

  function cellAt(ev) {
    const [, rows, cols] = dims();
    const size = Math.max(2, model.get("cell_size") || 16);
    const box = canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientX - box.left) / size);
    const r = Math.floor((ev.clientY - box.top) / size);
    if (r < 0 || c < 0 || r >= rows || c >= cols) return null;
    return [r, c];
  }

  function onMove(ev) {
    const cell = cellAt(ev);
    if (!cell) { onLeave(); return; }
    const [r, c] = cell;
    const values = model.get("values") || [];
    const labels = model.get("labels") || [];
    const label = labels[r] && labels[r][c];
    tip.textContent = `unit (${r}, ${c})  value ${fmt(values[r][c])}` + (label ? `\n${label}` : "");
    const box = root.getBoundingClientRect();
    tip.style.left = `${ev.clientX - box.left + 12}px`;
    tip.style.top = `${ev.clientY - box.top + 12}px`;
    tip.style.display = "block";
    if (!hover || hover[0] !== r || hover[1] !== c) { hover = cell; draw(); }
  }

  function onLeave() {
    tip.style.display = "none";
    if (hover) { hover = null; draw(); }
  }

  function onClick(ev) {
    const cell = cellAt(ev);
    if (!cell) return;
    let sel = (model.get("selected") || []).map((rc) => rc.slice());
    const i = sel.findIndex((rc) => rc[0] === cell[0] && rc[1] === cell[1]);
    if (model.get("multiple") && (ev.shiftKey || ev.ctrlKey || ev.metaKey)) {
      if (i >= 0) sel.splice(i, 1); else sel.push(cell);
    } else {
      sel = i >= 0 && sel.length === 1 ? [] : [cell];
    }
    model.set("selected", sel);
    model.save_changes();
    draw();
  }

  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("mouseleave", onLeave);
  canvas.addEventListener("click", onClick);
  const traits = ["values", "labels", "text", "selected", "marks", "colormap", "vmin", "vmax",
    "cell_size", "title"];
  for (const t of traits) model.on(`change:${t}`, draw);
  draw();
  return () => {
    for (const t of traits) model.off(`change:${t}`, draw);
    canvas.removeEventListener("mousemove", onMove);
    canvas.removeEventListener("mouseleave", onLeave);
    canvas.removeEventListener("click", onClick);
  };
}

export default { render };
