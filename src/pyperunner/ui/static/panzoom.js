/* pyperunner's run browser: panning and zooming the task graph (graph.js). The drawing lies in
 * a <g> (the viewport) whose transform is the view {x, y, k}: a drag pans, the wheel zooms about
 * the pointer, and the graph asks to fit the whole drawing, to zoom by a factor, to show one
 * rectangle of it or to pan a box into view. The scale is written on the <svg> as data-scale,
 * and its classes far and farther let the style sheet drop labels too small to read. */
'use strict';

const MIN_SCALE = 0.02;
const MAX_SCALE = 4;
/* Below these scales the detail lines, then all labels, are not drawn: too small to read, and
 * text is most of what a frame of a large graph paints. */
const FAR = 0.45;
const FARTHER = 0.2;

class PanZoom {
  constructor(svg, viewport) {
    this.svg = svg;
    this.viewport = viewport;
    this.view = {x: 0, y: 0, k: 1};
    this.size = {width: 1, height: 1}; /* of the drawing, at scale 1 */
    this.dragged = false; /* whether the last press moved the view: then it was no click */
    this.listen();
  }

  apply() {
    const {x, y, k} = this.view;
    this.viewport.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)}) scale(${k.toFixed(4)})`);
    this.svg.dataset.scale = k.toFixed(4);
    this.svg.classList.toggle('far', k < FAR);
    this.svg.classList.toggle('farther', k < FARTHER);
  }

  frame() {
    return {width: this.svg.clientWidth || 800, height: this.svg.clientHeight || 500};
  }

  /* Show the whole drawing, centred, at most at its natural size. */
  fit() {
    const {width, height} = this.size;
    this.show({x: width / 2, y: height / 2, width, height}, MIN_SCALE);
  }

  /* Show a rectangle of the drawing (centre x, y; width, height) fitted to the frame, at most at
   * its natural size and at least at scale least: centred, or from its left end if wider. */
  show({x, y, width, height}, least) {
    const frame = this.frame();
    const k = Math.max(least, Math.min(1, (frame.width - 16) / width, (frame.height - 16) / height));
    const left = x - width / 2;
    const dx = width * k <= frame.width - 16 ? frame.width / 2 - x * k : 8 - left * k;
    this.view = {k, x: dx, y: frame.height / 2 - y * k};
    this.apply();
  }

  /* Zoom by factor around a point of the frame (its centre by default). */
  zoomBy(factor, px, py) {
    const cx = px === undefined ? this.svg.clientWidth / 2 : px;
    const cy = py === undefined ? this.svg.clientHeight / 2 : py;
    const k = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.view.k * factor));
    const ratio = k / this.view.k;
    this.view = {k, x: cx - (cx - this.view.x) * ratio, y: cy - (cy - this.view.y) * ratio};
    this.apply();
  }

  /* Pan (never zoom) so that an element is in the part of the frame a panel leaves free. */
  reveal(element, panel) {
    const frame = this.svg.getBoundingClientRect();
    const box = element.getBoundingClientRect();
    const cover = panel && !panel.hidden ? Math.max(0, frame.right - panel.getBoundingClientRect().left) : 0;
    const free = frame.width - cover;
    const inside = box.left >= frame.left && box.right <= frame.left + free &&
      box.top >= frame.top && box.bottom <= frame.bottom;
    if (inside || free < 80) return;
    this.view.x += frame.left + free / 2 - (box.left + box.right) / 2;
    this.view.y += frame.top + frame.height / 2 - (box.top + box.bottom) / 2;
    this.apply();
  }

  listen() {
    let press = null;
    this.svg.addEventListener('wheel', (event) => {
      event.preventDefault();
      const bounds = this.svg.getBoundingClientRect();
      this.zoomBy(Math.exp(-event.deltaY * 0.0015), event.clientX - bounds.left, event.clientY - bounds.top);
    }, {passive: false});
    this.svg.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return;
      press = {x: event.clientX, y: event.clientY, view: {...this.view}, id: event.pointerId};
      this.dragged = false;
    });
    this.svg.addEventListener('pointermove', (event) => {
      if (!press) return;
      const dx = event.clientX - press.x;
      const dy = event.clientY - press.y;
      if (!this.dragged && Math.hypot(dx, dy) < 4) return;
      if (!this.dragged) this.svg.setPointerCapture(press.id);
      this.dragged = true;
      this.svg.classList.add('panning');
      this.view = {...press.view, x: press.view.x + dx, y: press.view.y + dy};
      this.apply();
    });
    const release = () => {
      press = null;
      this.svg.classList.remove('panning');
    };
    this.svg.addEventListener('pointerup', release);
    this.svg.addEventListener('pointercancel', release);
  }
}
