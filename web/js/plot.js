// Channel locations on a <canvas>, coloured by class, with lon/lat axes. No map tiles: the console
// works on networks without internet access. Dragging a rectangle picks a bounding box.
import { CITY_BOUNDS, CLASS_COLOURS } from './reference.js';
import { t } from './i18n.js';

const MARGIN = { left: 56, right: 14, top: 14, bottom: 40 };

/** Enough decimals to tell neighbouring ticks apart. */
const decimals = (step) => Math.max(0, -Math.floor(Math.log10(step)));

function niceStep(span) {
  const raw = span / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

export class ChannelPlot {
  /** @param {(bbox: number[]) => void} onBbox called with [minLon, minLat, maxLon, maxLat] after a drag */
  constructor(canvas, onBbox) {
    this.canvas = canvas;
    this.onBbox = onBbox;
    this.points = [];
    this.drag = null;
    canvas.addEventListener('pointerdown', (e) => this.startDrag(e));
    canvas.addEventListener('pointermove', (e) => this.moveDrag(e));
    canvas.addEventListener('pointerup', (e) => this.endDrag(e));
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  show(channels) {
    this.points = channels;
    this.draw();
  }

  bounds() {
    if (this.points.length === 0) return { ...CITY_BOUNDS };
    let minLon = Infinity, maxLon = -Infinity, minLat = Infinity, maxLat = -Infinity;
    for (const { location } of this.points) {
      minLon = Math.min(minLon, location.lon);
      maxLon = Math.max(maxLon, location.lon);
      minLat = Math.min(minLat, location.lat);
      maxLat = Math.max(maxLat, location.lat);
    }
    // A single point (or a line) still needs an area around it.
    const padLon = Math.max((maxLon - minLon) * 0.05, 0.01);
    const padLat = Math.max((maxLat - minLat) * 0.05, 0.01);
    return { minLon: minLon - padLon, maxLon: maxLon + padLon, minLat: minLat - padLat, maxLat: maxLat + padLat };
  }

  /** Canvas pixels ⇄ lon/lat for the current frame. */
  frame() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    const b = this.bounds();
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    return {
      width, height, b, plotW, plotH,
      x: (lon) => MARGIN.left + ((lon - b.minLon) / (b.maxLon - b.minLon)) * plotW,
      y: (lat) => MARGIN.top + (1 - (lat - b.minLat) / (b.maxLat - b.minLat)) * plotH,
      lon: (x) => b.minLon + ((x - MARGIN.left) / plotW) * (b.maxLon - b.minLon),
      lat: (y) => b.minLat + (1 - (y - MARGIN.top) / plotH) * (b.maxLat - b.minLat),
    };
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const f = this.frame();
    if (f.width === 0 || f.height === 0) return;
    canvas.width = Math.round(f.width * ratio);
    canvas.height = Math.round(f.height * ratio);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, f.width, f.height);
    ctx.fillStyle = '#f7f9fb';
    ctx.fillRect(MARGIN.left, MARGIN.top, f.plotW, f.plotH);
    this.drawAxes(ctx, f);
    for (const channel of this.points) {
      ctx.fillStyle = CLASS_COLOURS[channel.class] ?? '#555';
      ctx.globalAlpha = channel.status === 'online' ? 0.9 : 0.35;
      ctx.beginPath();
      ctx.arc(f.x(channel.location.lon), f.y(channel.location.lat), 3, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (this.drag?.current) {
      const { start, current } = this.drag;
      ctx.strokeStyle = '#0b3d6b';
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(start.x, start.y, current.x - start.x, current.y - start.y);
      ctx.setLineDash([]);
    }
  }

  drawAxes(ctx, f) {
    ctx.strokeStyle = '#c5ced8';
    ctx.fillStyle = '#44505c';
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    const lonStep = niceStep(f.b.maxLon - f.b.minLon);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let lon = Math.ceil(f.b.minLon / lonStep) * lonStep; lon <= f.b.maxLon; lon += lonStep) {
      const x = f.x(lon);
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, MARGIN.top + f.plotH);
      ctx.stroke();
      ctx.fillText(lon.toFixed(decimals(lonStep)), x, MARGIN.top + f.plotH + 4);
    }
    const latStep = niceStep(f.b.maxLat - f.b.minLat);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let lat = Math.ceil(f.b.minLat / latStep) * latStep; lat <= f.b.maxLat; lat += latStep) {
      const y = f.y(lat);
      ctx.beginPath();
      ctx.moveTo(MARGIN.left, y);
      ctx.lineTo(MARGIN.left + f.plotW, y);
      ctx.stroke();
      ctx.fillText(lat.toFixed(decimals(latStep)), MARGIN.left - 4, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText(t('plot.lon'), MARGIN.left + f.plotW / 2, f.height - 2);
    ctx.save();
    ctx.translate(12, MARGIN.top + f.plotH / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(t('plot.lat'), 0, 0);
    ctx.restore();
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  startDrag(event) {
    this.canvas.setPointerCapture(event.pointerId);
    this.drag = { start: this.point(event), current: null };
  }

  moveDrag(event) {
    if (!this.drag) return;
    this.drag.current = this.point(event);
    this.draw();
  }

  endDrag(event) {
    if (!this.drag) return;
    const { start } = this.drag;
    const end = this.point(event);
    this.drag = null;
    this.draw();
    // A click is not a selection.
    if (Math.abs(end.x - start.x) < 6 || Math.abs(end.y - start.y) < 6) return;
    const f = this.frame();
    const lons = [f.lon(start.x), f.lon(end.x)].sort((a, b) => a - b);
    const lats = [f.lat(start.y), f.lat(end.y)].sort((a, b) => a - b);
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    this.onBbox([clamp(lons[0], -180, 180), clamp(lats[0], -90, 90), clamp(lons[1], -180, 180), clamp(lats[1], -90, 90)].map((v) => Number(v.toFixed(4))));
  }
}
