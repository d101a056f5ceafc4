/* pyperunner's run browser: the task graph of a run page. dagre (vendor/dagre.min.js) places the
 * boxes; this file draws them as SVG (one <g class="task" data-name> per task box, one
 * <g class="group" data-group> per group of like tasks), pans and zooms it (panzoom.js),
 * fits the graph to its frame, folds groups of like tasks into one box when the graph is large and
 * unfolds them on click (a large group, or one whose tasks share their parents and children, as
 * rows of its tasks in the group's order), and recolours boxes as statuses change. */
'use strict';

/* Above this many tasks, each group of like tasks starts as one box. */
const COLLAPSE_ABOVE = 30;
const BOX_HEIGHT = 44;
const GROUP_HEIGHT = 48;
const STACK = 6; /* how far the cards behind a group box show */
const PAD_X = 12;
const MIN_BOX_WIDTH = 110;
const MAX_LABEL_PX = 300;
const TAB_HEIGHT = 22;
/* An expanded group of more tasks than this is drawn as a block: its tasks in a grid. */
const GRID_ABOVE = 60;
/* A block of at most this many tasks is one row. */
const ROW_MAX = 8;
const GRID_GAP = 10;
const BLOCK_PAD = 20;
/* Pixels the toolbar takes at the frame's top; the least a frame shrinks to (see show). */
const TOOLBAR_ROOM = 44;
const MIN_FRAME = 200;
/* A group unfolded or folded is shown at this scale at least, if the whole graph would be smaller. */
const READABLE = 0.8;
const NAME_ORDER = new Intl.Collator('en', {numeric: true});
const LAYOUT = {rankdir: 'TB', nodesep: 26, ranksep: 54, edgesep: 14, marginx: 24, marginy: 24};

class TaskGraph {
  /* tasks: the run document's tasks; groups: its groups; onSelect(name) when a task is clicked. */
  constructor(tasks, groups, onSelect) {
    this.tasks = new Map(tasks.map((task) => [task.name, task]));
    this.groups = new Map(groups.map((group) => [group.id, group]));
    this.groupOf = new Map();
    for (const group of groups) for (const name of group.tasks) this.groupOf.set(name, group);
    this.children = childrenOf(tasks);
    this.folding = tasks.length > COLLAPSE_ABOVE && groups.length > 0;
    this.expanded = new Set();
    this.modes = new Map(); /* group id -> its mode, worked out once a drawing (see render) */
    this.onSelect = onSelect;
    this.selected = null;
    this.drawn = new Map(); /* box id -> {element, rect, detail, title, node} */
    this.measure = document.createElement('canvas').getContext('2d');
    this.element = this.frame();
  }

  // -- the frame: toolbar, legend, svg ---------------------------------------------------------

  frame() {
    this.viewport = svgEl('g', {class: 'viewport'});
    this.svg = svgEl('svg', {class: 'graph', role: 'img', 'aria-label': 'task graph'},
      svgEl('defs', {}, svgEl('marker', {
        id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
        orient: 'auto-start-reverse',
      }, svgEl('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}))),
      this.viewport);
    this.panzoom = new PanZoom(this.svg, this.viewport);
    const button = (label, title, action, cls) => el('button', {
      type: 'button', class: `tool ${cls}`, title, 'aria-label': title, onclick: action}, label);
    const tools = [
      button('+', 'Zoom in', () => this.panzoom.zoomBy(1.25), 'zoom-in'),
      button('−', 'Zoom out', () => this.panzoom.zoomBy(0.8), 'zoom-out'),
      button('Fit', 'Fit the graph to the frame', () => this.fit(), 'fit'),
    ];
    if (this.folding) {
      tools.push(
        button('Expand all', 'Draw every task of every group', () => this.setAll(true), 'expand-all'),
        button('Collapse all', 'Draw each group as one box', () => this.setAll(false), 'collapse-all'));
    }
    const legend = el('div', {class: 'legend'}, WORST_FIRST.map((status) =>
      el('span', {class: 'legend-item'},
        el('span', {class: 'swatch', 'data-status': status, style: `--chip: ${STATUS_COLORS[status]}`}),
        STATUS_LABELS[status])));
    this.listen();
    return el('div', {class: 'graph-frame'},
      el('div', {class: 'graph-tools'}, tools, legend), this.svg);
  }

  // -- what is drawn -----------------------------------------------------------------------------

  /* How a group is drawn: 'plain' (a small graph: as any tasks), 'folded' (one box), 'open'
   * (each task placed with its own edges, in a frame) or 'block' (its tasks in rows, in the
   * group's order, in a frame, the edges to and from them drawn once: for too many tasks to
   * place one by one, or for tasks side by side whose edges would all be alike). */
  mode(group) {
    if (!this.modes.has(group.id)) this.modes.set(group.id, this.modeOf(group));
    return this.modes.get(group.id);
  }

  modeOf(group) {
    if (!this.folding) return 'plain';
    if (!this.expanded.has(group.id)) return 'folded';
    return group.tasks.length > GRID_ABOVE || this.alike(group) ? 'block' : 'open';
  }

  /* Whether a group's tasks lie side by side with the same parents and children, as drawn
   * (a folded group's tasks as its box): placed one by one, their edges would say nothing more. */
  alike(group) {
    if (group.kind !== 'side') return false;
    const drawnAs = (name) => {
      const other = this.groupOf.get(name);
      return other && !this.expanded.has(other.id) ? 'g:' + other.id : 't:' + name;
    };
    const drawn = (names) => [...new Set(names.filter((n) => this.tasks.has(n)).map(drawnAs))].sort().join('\n');
    const ends = (task) => `${drawn(task.parents)}\n|\n${drawn(this.children.get(task.name))}`;
    return new Set(group.tasks.map((name) => ends(this.tasks.get(name)))).size === 1;
  }

  /* The id of the box a task is drawn in: its own, or its folded group's. */
  boxId(name) {
    const group = this.groupOf.get(name);
    return group && this.mode(group) === 'folded' ? 'g:' + group.id : 't:' + name;
  }

  /* The id of the node dagre places for a task: its box, or its group's block. */
  nodeId(name) {
    const group = this.groupOf.get(name);
    return group && this.mode(group) === 'block' ? 'b:' + group.id : this.boxId(name);
  }

  textWidth(text, font) {
    this.measure.font = font;
    return this.measure.measureText(text).width;
  }

  /* The text of a label cut to MAX_LABEL_PX, with an ellipsis. */
  fitText(text, font) {
    if (this.textWidth(text, font) <= MAX_LABEL_PX) return text;
    let cut = Math.floor(text.length * MAX_LABEL_PX / this.textWidth(text, font));
    while (cut > 1 && this.textWidth(text.slice(0, cut) + '…', font) > MAX_LABEL_PX) cut -= 1;
    return text.slice(0, cut) + '…';
  }

  /* Lay the graph out with dagre and draw it; keeps the view unless refit. */
  render() {
    this.modes.clear(); /* a group's mode follows this.expanded, which may have changed */
    const family = getComputedStyle(document.body).fontFamily;
    this.fonts = {name: `600 12.5px ${family}`, detail: `11.5px ${family}`};
    const graph = new dagre.graphlib.Graph({compound: true, multigraph: false});
    graph.setGraph({...LAYOUT});
    graph.setDefaultEdgeLabel(() => ({}));
    const nodes = new Map(); /* dagre's id -> {kind: task | group | block, ...} */
    /* by name, numbers by value (Load(s2) before Load(s10)): the order each rank should read in
     * where crossings allow (see inNameOrder) */
    const ordered = [...this.tasks.values()].sort((a, b) => NAME_ORDER.compare(a.name, b.name));
    for (const task of ordered) {
      const id = this.nodeId(task.name);
      if (nodes.has(id)) continue;
      const group = this.groupOf.get(task.name);
      if (id.startsWith('g:')) nodes.set(id, {kind: 'group', group, members: group.tasks});
      else if (id.startsWith('b:')) nodes.set(id, {kind: 'block', group, members: group.tasks});
      else nodes.set(id, {kind: 'task', task, members: [task.name]});
    }
    for (const [id, node] of nodes) graph.setNode(id, this.measureNode(node));
    for (const group of this.groups.values()) {
      if (this.mode(group) !== 'open') continue;
      graph.setNode('c:' + group.id, {});
      for (const name of group.tasks) graph.setParent('t:' + name, 'c:' + group.id);
    }
    const edges = new Map();
    for (const task of ordered) {
      const to = this.nodeId(task.name);
      for (const parent of task.parents) {
        if (!this.tasks.has(parent)) continue;
        const from = this.nodeId(parent);
        if (from === to) continue;
        const key = from + '\n' + to;
        const edge = edges.get(key) || {from, to, count: 0};
        edge.count += 1;
        edges.set(key, edge);
      }
    }
    for (const edge of edges.values()) {
      const label = {};
      if (edge.count > 1) {
        edge.text = `×${fmtCount(edge.count)}`;
        Object.assign(label, {width: this.textWidth(edge.text, this.fonts.detail) + 10,
          height: 16, labelpos: 'c'});
      }
      graph.setEdge(edge.from, edge.to, label);
    }
    dagre.layout(graph);
    inNameOrder(graph, [...nodes.keys()]);
    this.layout = graph;
    const {width, height} = graph.graph(); /* -Infinity for a pipeline of no task */
    this.panzoom.size = {width: Math.max(1, width) || 1, height: Math.max(1, height) || 1};
    this.draw(graph, nodes, edges);
  }

  /* A node's size for dagre; a task's or group's label and detail line are set on it. */
  measureNode(node) {
    if (node.kind === 'block') {
      node.boxes = node.members.map((name) => ({kind: 'task', task: this.tasks.get(name)}));
      node.cell = Math.max(...node.boxes.map((box) => this.labelWidth(box)));
      const columns = Math.ceil(Math.sqrt(node.boxes.length * 2.5 * (BOX_HEIGHT + GRID_GAP) / (node.cell + GRID_GAP)));
      node.columns = node.boxes.length <= ROW_MAX ? node.boxes.length : Math.min(columns, node.boxes.length);
      const rows = Math.ceil(node.boxes.length / node.columns);
      return {width: node.columns * (node.cell + GRID_GAP) - GRID_GAP + 2 * BLOCK_PAD,
        height: rows * (BOX_HEIGHT + GRID_GAP) - GRID_GAP + 2 * BLOCK_PAD};
    }
    const width = this.labelWidth(node);
    if (node.kind === 'group') return {width: width + STACK, height: GROUP_HEIGHT + STACK};
    return {width, height: BOX_HEIGHT};
  }

  labelWidth(node) {
    this.describe(node);
    node.label = this.fitText(node.kind === 'group' ? node.group.id : node.task.name, this.fonts.name);
    return Math.max(MIN_BOX_WIDTH, 2 * PAD_X + Math.max(
      this.textWidth(node.label, this.fonts.name), this.textWidth(node.detail, this.fonts.detail)));
  }

  /* A drawn node's status, its detail line and its tooltip, from its tasks. */
  describe(node) {
    if (node.kind === 'task') {
      const task = node.task;
      node.status = task.status;
      const parts = [STATUS_LABELS[task.status] || task.status];
      if (task.duration !== null && task.duration !== undefined) parts.push(fmtDuration(task.duration));
      if (task.attempts > 1) parts.push(`${task.attempts} attempts`);
      node.detail = parts.join(' · ');
      node.title = task.error ? `${task.name}\n${task.error}` : task.name;
      return;
    }
    const counts = countStatuses(node.members.map((name) => this.tasks.get(name)));
    node.status = worstStatus(counts);
    node.detail = WORST_FIRST.filter((s) => counts[s])
      .map((s) => `${fmtCount(counts[s])} ${STATUS_LABELS[s]}`).join(' · ');
    node.title = `${node.group.id}\n${node.detail}\nclick to draw each task`;
  }

  draw(graph, nodes, edges) {
    clear(this.viewport);
    this.drawn.clear();
    const clusters = svgEl('g', {class: 'clusters'});
    const lines = svgEl('g', {class: 'edges'});
    const labels = svgEl('g', {class: 'edge-labels'});
    const tabs = svgEl('g', {class: 'tabs'}); /* over the edges, which may pass a frame's top */
    const boxes = svgEl('g', {class: 'boxes'});
    const layers = {clusters, tabs, boxes};
    for (const group of this.groups.values()) {
      if (this.mode(group) === 'open') this.clusterBox(group, graph.node('c:' + group.id), layers);
    }
    for (const edge of edges.values()) {
      const placed = graph.edge(edge.from, edge.to);
      lines.appendChild(svgEl('path', {class: 'edge', d: curve(placed.points),
        'data-from': edge.from.slice(2), 'data-to': edge.to.slice(2), 'marker-end': 'url(#arrow)'}));
      if (edge.text) {
        labels.appendChild(svgEl('g', {class: 'edge-label',
          transform: `translate(${placed.x - placed.width / 2},${placed.y - placed.height / 2})`},
        svgEl('rect', {width: placed.width, height: placed.height, rx: 8}),
        svgEl('text', {x: placed.width / 2, y: 12, 'text-anchor': 'middle'}, edge.text)));
      }
    }
    for (const [id, node] of nodes) {
      const placed = graph.node(id);
      if (node.kind === 'group') boxes.appendChild(this.groupBox(node, placed));
      else if (node.kind === 'task') boxes.appendChild(this.taskBox(node, placed));
      else this.blockBoxes(node, placed, layers);
    }
    append(this.viewport, [clusters, lines, labels, tabs, boxes]);
    if (this.selected) this.markSelected(this.selected);
  }

  taskBox(node, placed) {
    const {width, height} = placed;
    const detail = svgEl('text', {class: 'detail', x: PAD_X, y: 33}, node.detail);
    const title = svgEl('title', {}, node.title);
    const rect = svgEl('rect', {class: 'box', width, height, rx: 6, fill: STATUS_COLORS[node.status]});
    const element = svgEl('g', {class: 'task', 'data-name': node.task.name, 'data-status': node.status,
      transform: `translate(${placed.x - width / 2},${placed.y - height / 2})`, tabindex: 0},
    title, rect, svgEl('text', {class: 'name', x: PAD_X, y: 18}, node.label), detail);
    this.drawn.set('t:' + node.task.name, {element, rect, detail, title, node});
    return element;
  }

  groupBox(node, placed) {
    const width = placed.width - STACK;
    const height = placed.height - STACK;
    const fill = STATUS_COLORS[node.status];
    const rect = svgEl('rect', {class: 'box', width, height, rx: 6, fill});
    const detail = svgEl('text', {class: 'detail', x: PAD_X, y: 36}, node.detail);
    const title = svgEl('title', {}, node.title);
    const element = svgEl('g', {class: 'group', 'data-group': node.group.id, 'data-status': node.status,
      transform: `translate(${placed.x - placed.width / 2},${placed.y - placed.height / 2})`, tabindex: 0},
    title,
    svgEl('rect', {class: 'card', x: STACK, y: STACK, width, height, rx: 6, fill}),
    svgEl('rect', {class: 'card', x: STACK / 2, y: STACK / 2, width, height, rx: 6, fill}),
    rect, svgEl('text', {class: 'name', x: PAD_X, y: 19}, node.label), detail);
    this.drawn.set('g:' + node.group.id, {element, rect, detail, title, node});
    return element;
  }

  /* A block: its frame, and its tasks in rows, in the group's order. */
  blockBoxes(node, placed, layers) {
    this.clusterBox(node.group, placed, layers);
    const left = placed.x - placed.width / 2 + BLOCK_PAD;
    const top = placed.y - placed.height / 2 + BLOCK_PAD;
    node.boxes.forEach((box, i) => {
      const column = i % node.columns;
      const row = Math.floor(i / node.columns);
      layers.boxes.appendChild(this.taskBox(box, {width: node.cell, height: BOX_HEIGHT,
        x: left + column * (node.cell + GRID_GAP) + node.cell / 2,
        y: top + row * (BOX_HEIGHT + GRID_GAP) + BOX_HEIGHT / 2}));
    });
  }

  /* An unfolded group: a frame round its tasks, and a tab on its top that folds it again. */
  clusterBox(group, placed, layers) {
    const label = `▾ ${this.fitText(group.id, this.fonts.detail)}`;
    const tabWidth = this.textWidth(label, this.fonts.detail) + 16;
    const x = placed.x - placed.width / 2;
    const y = placed.y - placed.height / 2;
    layers.clusters.appendChild(svgEl('g', {class: 'group expanded', 'data-group': group.id},
      svgEl('rect', {class: 'cluster', x, y, width: placed.width, height: placed.height, rx: 10})));
    layers.tabs.appendChild(svgEl('g', {class: 'group-tab', 'data-group': group.id,
      transform: `translate(${x + 8},${y - TAB_HEIGHT / 2})`, tabindex: 0},
    svgEl('title', {}, 'Draw this group as one box'),
    svgEl('rect', {width: tabWidth, height: TAB_HEIGHT, rx: TAB_HEIGHT / 2}),
    svgEl('text', {x: 8, y: 15}, label)));
  }

  // -- folding -----------------------------------------------------------------------------------

  toggle(groupId) {
    if (this.expanded.has(groupId)) this.expanded.delete(groupId);
    else this.expanded.add(groupId);
    this.render();
    this.focus(groupId);
  }

  /* The whole graph if it fits the frame readably, else the group just unfolded or folded (its
   * frame, or its box) at a readable scale at least: centred, or from its left end if wider. */
  focus(groupId) {
    this.fit();
    const prefix = {open: 'c:', block: 'b:', folded: 'g:'}[this.mode(this.groups.get(groupId))];
    const placed = prefix && this.layout.node(prefix + groupId);
    if (placed && this.panzoom.view.k < READABLE) this.panzoom.show(placed, READABLE);
  }

  setAll(expand) {
    this.expanded = new Set(expand ? this.groups.keys() : []);
    this.render();
    this.fit();
  }

  // -- live changes and selection --------------------------------------------------------------

  /* Recolour the boxes of the tasks named (their records in this.tasks were updated). */
  update(names) {
    const ids = new Set(names.map((name) => this.boxId(name)));
    for (const id of ids) {
      const drawn = this.drawn.get(id);
      if (!drawn) continue;
      this.describe(drawn.node);
      drawn.element.setAttribute('data-status', drawn.node.status);
      drawn.rect.setAttribute('fill', STATUS_COLORS[drawn.node.status]);
      for (const card of drawn.element.querySelectorAll('.card')) {
        card.setAttribute('fill', STATUS_COLORS[drawn.node.status]);
      }
      drawn.detail.textContent = drawn.node.detail;
      drawn.title.textContent = drawn.node.title;
    }
  }

  markSelected(name) {
    this.selected = name;
    for (const node of this.svg.querySelectorAll('.selected')) node.classList.remove('selected');
    const drawn = name && this.drawn.get(this.boxId(name));
    if (drawn) drawn.element.classList.add('selected');
  }

  /* Pan (never zoom) so that a task's box is in the part of the frame the panel leaves free. */
  reveal(name, panel) {
    const drawn = name && this.drawn.get(this.boxId(name));
    if (drawn) this.panzoom.reveal(drawn.element, panel);
  }

  /* Show the whole graph, centred, at most at its natural size. */
  fit() {
    this.panzoom.fit();
  }

  /* Draw the graph for the first time. One with no group to unfold that is shorter than its
   * frame gets a frame its height (the toolbar's room above and below), not empty space. */
  show() {
    this.render();
    const wanted = this.panzoom.size.height + 2 * TOOLBAR_ROOM;
    if (!this.folding && wanted < this.element.clientHeight) {
      this.element.style.minHeight = `${MIN_FRAME}px`;
      this.element.style.height = `${Math.max(MIN_FRAME, wanted)}px`;
    }
    this.fit();
  }

  listen() {
    this.svg.addEventListener('click', (event) => {
      if (this.panzoom.dragged) return;
      this.activate(event.target);
    });
    this.svg.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.activate(event.target);
      }
    });
  }

  /* What a click (or Enter) on a part of the graph does. */
  activate(target) {
    const tab = target.closest('.group-tab');
    if (tab) return this.toggle(tab.dataset.group);
    const task = target.closest('g.task');
    if (task) return this.onSelect(task.dataset.name);
    const group = target.closest('g.group');
    if (group && !group.classList.contains('expanded')) return this.toggle(group.dataset.group);
    return undefined;
  }
}

/* dagre keeps the order of a rank where it has no crossings to undo, but may return its mirror
 * image (shards s11 ... s0, right to left). Mirror the layout back where more boxes of a rank
 * (ids: 't:' or 'g:' and a name) are then in name order than out of it: a mirror image has the
 * same crossings. */
function inNameOrder(graph, ids) {
  const rows = new Map();
  for (const id of ids) {
    const {x, y} = graph.node(id);
    if (!rows.has(y)) rows.set(y, []);
    rows.get(y).push({x, name: id.slice(2)});
  }
  let score = 0;
  for (const row of rows.values()) {
    row.sort((a, b) => a.x - b.x);
    for (let i = 1; i < row.length; i++) score += Math.sign(NAME_ORDER.compare(row[i].name, row[i - 1].name));
  }
  if (score >= 0) return;
  const width = graph.graph().width;
  for (const id of graph.nodes()) graph.node(id).x = width - graph.node(id).x;
  for (const edge of graph.edges()) {
    const placed = graph.edge(edge);
    for (const point of placed.points) point.x = width - point.x;
    if (placed.x !== undefined) placed.x = width - placed.x;
  }
}

/* A smooth SVG path through dagre's edge points: a uniform B-spline, as d3's curveBasis. */
function curve(points) {
  let d = '';
  let [x0, y0, x1, y1] = [0, 0, 0, 0];
  let seen = 0;
  const point = (x, y) => {
    if (seen === 0) {
      d = `M${x},${y}`;
    } else if (seen >= 2) {
      if (seen === 2) d += `L${(5 * x0 + x1) / 6},${(5 * y0 + y1) / 6}`;
      d += `C${(2 * x0 + x1) / 3},${(2 * y0 + y1) / 3} ${(x0 + 2 * x1) / 3},${(y0 + 2 * y1) / 3} ` +
        `${(x0 + 4 * x1 + x) / 6},${(y0 + 4 * y1 + y) / 6}`;
    }
    seen += 1;
    [x0, y0, x1, y1] = [x1, y1, x, y];
  };
  for (const {x, y} of points) point(x, y);
  if (seen >= 3) point(x1, y1);
  return d + `L${x1},${y1}`;
}
