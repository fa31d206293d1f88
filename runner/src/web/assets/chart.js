// LoadDensity charts: the run's history, downsampled, drawn as SVG line charts.
//
// A point is an array [time_s, width_s, users, rps, fps, p50_ms, p95_ms, corrected_p95_ms,
// target_rate, iteration_rate]. ChartHistory mirrors
// runner/src/web/history.rs: the last RECENT points keep one-second resolution; older points
// live in a tier whose resolution doubles whenever it passes OLD_CAP points, merged as
// time-weighted means.
"use strict";

(function () {
  const RECENT = 300;
  const OLD_CAP = 1200;
  const SVG_NS = "http://www.w3.org/2000/svg";

  function absorb(into, point) {
    const a = into[1];
    const b = point[1];
    for (let i = 2; i < into.length; i++) {
      into[i] = (into[i] * a + point[i] * b) / (a + b);
    }
    into[1] = a + b;
  }

  class ChartHistory {
    constructor(saved) {
      this.resolution = (saved && saved.resolution) || 1;
      this.old = saved && saved.old ? saved.old.map((p) => p.slice()) : [];
      this.recent = saved && saved.recent ? saved.recent.map((p) => p.slice()) : [];
    }

    lastTime() {
      const last = this.recent.length ? this.recent[this.recent.length - 1] : this.old[this.old.length - 1];
      return last ? last[0] : -1;
    }

    push(point) {
      if (point[0] <= this.lastTime()) return;
      this.recent.push(point.slice());
      while (this.recent.length > RECENT) this.pushOld(this.recent.shift());
    }

    pushOld(point) {
      const last = this.old[this.old.length - 1];
      if (last && last[1] + point[1] <= this.resolution) absorb(last, point);
      else this.old.push(point);
      if (this.old.length > OLD_CAP) {
        this.resolution *= 2;
        const merged = [];
        for (const p of this.old) {
          const tail = merged[merged.length - 1];
          if (tail && tail[1] + p[1] <= this.resolution) absorb(tail, p);
          else merged.push(p);
        }
        this.old = merged;
      }
    }

    points() {
      return this.old.concat(this.recent);
    }
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  // The top of the axis: four gridline steps of 1, 2, 2.5 or 5 times a power of ten.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const raw = value / 4;
    const exp = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (raw <= step * exp) return 4 * step * exp;
    }
    return 40 * exp;
  }

  function formatNumber(v) {
    if (v >= 1000) return Math.round(v).toLocaleString("en-US");
    if (v >= 10 || v === 0) return String(Math.round(v * 10) / 10);
    return String(Math.round(v * 100) / 100);
  }

  function clock(unix) {
    const d = new Date(unix * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  // A line chart over a fixed viewBox; draw() only rewrites attributes and text.
  class LineChart {
    constructor(svg, series, legend) {
      this.svg = svg;
      // [{label, color, index, optional, shownWith}]: an optional series shows once its values
      // (or those at index shownWith) are non-zero.
      this.series = series;
      this.legend = legend;
      this.width = 1400;
      this.height = 250;
      this.margin = { left: 56, right: 14, top: 12, bottom: 26 };
      svg.setAttribute("viewBox", "0 0 " + this.width + " " + this.height);
      svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
      this.gridLines = [];
      this.yLabels = [];
      for (let i = 0; i <= 4; i++) {
        this.gridLines.push(el("line", { class: "grid-line" }, svg));
        this.yLabels.push(el("text", { class: "axis-label", "text-anchor": "end" }, svg));
      }
      this.xLabels = [];
      for (let i = 0; i < 5; i++) {
        this.xLabels.push(el("text", { class: "axis-label", "text-anchor": "middle" }, svg));
      }
      this.lines = series.map((s) => {
        const line = el("polyline", { class: "series", stroke: s.color, "data-series": s.label }, svg);
        return line;
      });
      this.empty = el("text", { class: "empty", x: this.width / 2, y: this.height / 2, "text-anchor": "middle" }, svg);
      this.empty.textContent = "Waiting for data…";
      this.legendValues = [];
      this.legendItems = [];
      if (legend) {
        for (const s of series) {
          const item = document.createElement("span");
          const swatch = document.createElement("span");
          swatch.className = "swatch";
          swatch.style.background = s.color;
          item.appendChild(swatch);
          item.appendChild(document.createTextNode(s.label + " "));
          const value = document.createElement("b");
          value.textContent = "–";
          item.appendChild(value);
          legend.appendChild(item);
          this.legendValues.push(value);
          this.legendItems.push(item);
        }
      }
    }

    draw(points) {
      const m = this.margin;
      const plotW = this.width - m.left - m.right;
      const plotH = this.height - m.top - m.bottom;
      this.empty.style.display = points.length ? "none" : "";
      if (!points.length) {
        for (const line of this.lines) line.setAttribute("points", "");
        return;
      }
      const t0 = points[0][0];
      const last = points[points.length - 1];
      const t1 = Math.max(last[0] + last[1], t0 + 10);
      let max = 0;
      for (const p of points) {
        for (const s of this.series) if (p[s.index] > max) max = p[s.index];
      }
      const top = niceMax(max * 1.05);
      const x = (t) => m.left + ((t - t0) / (t1 - t0)) * plotW;
      const y = (v) => m.top + plotH - (v / top) * plotH;
      for (let i = 0; i <= 4; i++) {
        const value = (top * i) / 4;
        const yy = y(value).toFixed(1);
        const line = this.gridLines[i];
        line.setAttribute("x1", m.left);
        line.setAttribute("x2", this.width - m.right);
        line.setAttribute("y1", yy);
        line.setAttribute("y2", yy);
        const label = this.yLabels[i];
        label.setAttribute("x", m.left - 6);
        label.setAttribute("y", Number(yy) + 4);
        label.textContent = formatNumber(value);
      }
      for (let i = 0; i < this.xLabels.length; i++) {
        const t = t0 + ((t1 - t0) * i) / (this.xLabels.length - 1);
        const label = this.xLabels[i];
        label.setAttribute("x", x(t).toFixed(1));
        label.setAttribute("y", this.height - 6);
        label.setAttribute("text-anchor", i === 0 ? "start" : i === this.xLabels.length - 1 ? "end" : "middle");
        label.textContent = clock(t);
      }
      this.series.forEach((s, k) => {
        const when = s.shownWith === undefined ? s.index : s.shownWith;
        const shown = !s.optional || points.some((p) => p[when] > 0);
        this.lines[k].style.display = shown ? "" : "none";
        if (this.legendItems[k]) this.legendItems[k].style.display = shown ? "" : "none";
        let text = "";
        for (const p of points) {
          text += x(p[0] + p[1] / 2).toFixed(1) + "," + y(p[s.index]).toFixed(1) + " ";
        }
        this.lines[k].setAttribute("points", text);
        if (this.legendValues[k]) this.legendValues[k].textContent = formatNumber(last[s.index]);
      });
    }
  }

  window.LDChart = { ChartHistory, LineChart, formatNumber };
})();
