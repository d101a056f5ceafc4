/* pyperunner's run browser: the run page (#/run/<id>, and the whole of report.html). A header
 * (pipeline, state, times, counts by status, environment), the task graph (graph.js), a table of
 * tasks (sortable, filterable, paged; failures first) and a task's panel (parameters, why it ran,
 * its log, traceback, output preview, result). A running run is followed live: its changes are
 * polled and merged in place until it ends. */
'use strict';

const TABLE_PAGE = 100;
const POLL_MS = 700;
const TIMELINE_ROWS = 1500; /* the most bars the timeline draws, the earliest first */
const ROW = 20;
const LABEL_WIDTH = 250;

/* Draw the run page of the run given by the source into main. */
async function showRun(main, [runId], token) {
  loading(main);
  const doc = await SOURCE.run(runId);
  if (!isCurrent(token)) return;
  document.title = `${doc.pipeline} · ${doc.id}`;
  new RunPage(main, doc, token).start();
}

class RunPage {
  constructor(main, doc, token) {
    this.main = main;
    this.doc = doc;
    this.token = token;
    this.byName = new Map(doc.tasks.map((task) => [task.name, task]));
    this.children = childrenOf(doc.tasks);
    this.graph = new TaskGraph(doc.tasks, doc.groups || [], (name) => this.select(name));
    this.table = new TaskTable(doc.tasks, (name) => this.select(name));
    this.timeline = new Timeline(doc.tasks, (name) => this.select(name));
    this.panel = new TaskPanel(this);
  }

  start() {
    this.head = el('section', {class: 'run-head'});
    this.drawHead();
    fill(this.main,
      this.head,
      el('section', {class: 'run-body'},
        el('div', {class: 'graph-pane'}, this.graph.element),
        this.timeline.element,
        this.table.element),
      this.panel.element);
    this.graph.show();
    this.table.render();
    if (SOURCE.live && this.doc.state === 'running') this.poll();
  }

  drawHead() {
    const doc = this.doc;
    const counts = countStatuses(doc.tasks);
    const facts = [
      ['run', doc.id],
      ['started', fmtTime(doc.started)],
      ['finished', fmtTime(doc.finished)],
      ['duration', fmtDuration(doc.duration)],
      ['tasks', fmtCount(doc.tasks.length)],
    ];
    fill(this.head,
      el('div', {class: 'title-row'},
        el('h1', {class: 'pipeline-name'}, doc.pipeline),
        stateBadge(doc.state),
        doc.state === 'running' ? el('span', {class: 'live-note'}, 'live') : null),
      el('dl', {class: 'facts'}, facts.map(([term, value]) =>
        el('div', {class: 'fact'}, el('dt', {}, term), el('dd', {'data-fact': term}, value)))),
      el('div', {class: 'counts'}, countChips(counts, (status) => this.table.onlyStatus(status))),
      doc.error ? el('p', {class: 'run-error'}, doc.error) : null,
      environment(doc.environment || {}));
  }

  /* Open the panel of a task, from the graph or the table. */
  select(name) {
    const task = this.byName.get(name);
    if (!task) return;
    this.graph.markSelected(name);
    this.table.markSelected(name);
    this.panel.show(task);
    this.graph.reveal(name, this.panel.element);
  }

  // -- live --------------------------------------------------------------------------------------

  poll() {
    setTimeout(async () => {
      if (!isCurrent(this.token)) return;
      let changes;
      try {
        changes = await SOURCE.changes(this.doc.id, this.doc.journal);
      } catch (error) {
        document.getElementById('topbar-note').textContent = `live updates paused: ${error.message}`;
        this.poll();
        return;
      }
      if (!isCurrent(this.token)) return;
      document.getElementById('topbar-note').textContent = '';
      this.merge(changes);
      if (this.doc.state === 'running') this.poll();
      else this.refreshEnd();
    }, POLL_MS);
  }

  /* Merge a live_changes document: task records, the state, where the journal goes on from. */
  merge(changes) {
    const names = [];
    for (const [name, fields] of Object.entries(changes.tasks || {})) {
      const task = this.byName.get(name);
      if (!task) continue;
      Object.assign(task, fields);
      names.push(name);
    }
    this.doc.journal = changes.journal;
    const stateChanged = changes.state !== this.doc.state;
    this.doc.state = changes.state;
    if (!names.length && !stateChanged) return;
    this.graph.update(names);
    this.table.render();
    this.timeline.render();
    this.drawHead();
    if (this.panel.task && names.includes(this.panel.task.name)) this.panel.show(this.panel.task);
  }

  /* Once a run ends, read it whole once more: its finish time, duration and previews. */
  async refreshEnd() {
    const doc = await SOURCE.run(this.doc.id);
    if (!isCurrent(this.token)) return;
    for (const task of doc.tasks) Object.assign(this.byName.get(task.name) || {}, task);
    Object.assign(this.doc, {...doc, tasks: this.doc.tasks});
    this.graph.update(doc.tasks.map((task) => task.name));
    this.table.render();
    this.timeline.render();
    this.drawHead();
  }
}

/* The run's environment: paths, host, versions, git and packages, folded away. */
function environment(info) {
  const value = (item) => {
    if (item === null || item === undefined) return '–';
    if (Array.isArray(item)) return item.map(fmtValue).join(' ');
    if (typeof item === 'object') {
      const entries = Object.entries(item);
      return el('details', {class: 'nested'}, el('summary', {}, `${entries.length} entries`),
        el('dl', {}, entries.map(([k, v]) => [el('dt', {}, k), el('dd', {}, fmtValue(v))])));
    }
    return String(item);
  };
  return el('details', {class: 'environment'}, el('summary', {}, 'Environment'),
    el('dl', {}, Object.entries(info).map(([term, item]) =>
      [el('dt', {}, term.replace(/_/g, ' ')), el('dd', {}, value(item))])));
}

// -- the timeline -------------------------------------------------------------------------------

/* When each task ran, one bar a task, so tasks that ran side by side are seen so; drawn when
 * first unfolded. */
class Timeline {
  constructor(tasks, onSelect) {
    this.tasks = tasks;
    this.onSelect = onSelect;
    this.body = el('div', {class: 'timeline-body'});
    this.element = el('details', {class: 'timeline'},
      el('summary', {}, el('h2', {}, 'Timeline'), el('span', {class: 'muted small'}, ' when each task ran')),
      this.body);
    this.element.addEventListener('toggle', () => this.render());
  }

  render() {
    if (!this.element.open) return;
    const ran = this.tasks.filter((task) => typeof task.started === 'number')
      .sort((a, b) => a.started - b.started || NATURAL.compare(a.name, b.name));
    if (!ran.length) {
      fill(this.body, el('p', {class: 'muted'}, 'No task ran in this run (cached or not started).'));
      return;
    }
    const shown = ran.slice(0, TIMELINE_ROWS);
    const now = Date.now() / 1000;
    const end = (task) => task.finished ?? (task.status === 'RUNNING' ? now : task.started);
    const start = shown[0].started;
    const span = Math.max(1e-3, ...shown.map((task) => end(task) - start));
    const width = Math.max(400, this.body.clientWidth - LABEL_WIDTH - 60);
    const x = (seconds) => LABEL_WIDTH + (seconds - start) / span * width;
    const step = tickStep(span);
    const ticks = [];
    for (let t = 0; t <= span + 1e-9; t += step) {
      ticks.push(svgEl('g', {class: 'tick'},
        svgEl('line', {x1: x(start + t), x2: x(start + t), y1: 18, y2: 24 + shown.length * ROW}),
        svgEl('text', {x: x(start + t), y: 12, 'text-anchor': 'middle'}, fmtDuration(t))));
    }
    const bars = shown.map((task, i) => {
      const y = 24 + i * ROW;
      const left = x(task.started);
      const name = task.name.length > 34 ? task.name.slice(0, 33) + '…' : task.name;
      return svgEl('g', {class: 'bar', 'data-name': task.name, 'data-status': task.status},
        svgEl('title', {}, `${task.name}\n${STATUS_LABELS[task.status]} · ${fmtDuration(end(task) - task.started)}`),
        svgEl('text', {class: 'bar-name', x: LABEL_WIDTH - 8, y: y + 14, 'text-anchor': 'end'}, name),
        svgEl('rect', {x: left, y: y + 3, width: Math.max(2, x(end(task)) - left), height: ROW - 6, rx: 3,
          fill: STATUS_COLORS[task.status]}));
    });
    const svg = svgEl('svg', {class: 'timeline-chart', width: LABEL_WIDTH + width + 40,
      height: 30 + shown.length * ROW}, ticks, bars);
    svg.addEventListener('click', (event) => {
      const bar = event.target.closest('g.bar');
      if (bar) this.onSelect(bar.dataset.name);
    });
    fill(this.body, svg, ran.length > shown.length
      ? el('p', {class: 'muted small'}, `The first ${fmtCount(shown.length)} of ${fmtCount(ran.length)} tasks that ran.`)
      : null);
  }
}

/* A round step for about eight ticks over span seconds. */
function tickStep(span) {
  const rough = span / 8;
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
}

// -- the table of tasks ----------------------------------------------------------------------------

const COLUMNS = [
  {key: 'status', label: 'Status', sort: (a, b) => statusRank(a.status) - statusRank(b.status)},
  {key: 'name', label: 'Task', sort: (a, b) => NATURAL.compare(a.name, b.name)},
  {key: 'reason', label: 'Why it ran'},
  {key: 'duration', label: 'Duration', sort: (a, b) => (a.duration ?? -1) - (b.duration ?? -1)},
  {key: 'attempts', label: 'Attempts'},
  {key: 'output_bytes', label: 'Output'},
  {key: 'error', label: 'Error'},
];
const NATURAL = new Intl.Collator('en', {numeric: true});

class TaskTable {
  constructor(tasks, onSelect) {
    this.tasks = tasks;
    this.onSelect = onSelect;
    this.sort = {key: 'status', descending: false}; /* failures first */
    this.statuses = new Set(); /* shown statuses; empty: all */
    this.text = '';
    this.offset = 0;
    this.selected = null;
    /* the name box is made once, so that live updates never take it from under the typing */
    const search = el('input', {type: 'search', class: 'name-filter', placeholder: 'Filter tasks by name',
      'aria-label': 'Filter tasks by name'});
    search.addEventListener('input', () => {
      this.text = search.value;
      this.offset = 0;
      this.renderBody();
    });
    this.filters = el('div', {class: 'status-filters'});
    this.body = el('div', {class: 'table-body'});
    this.element = el('section', {class: 'task-table'},
      el('div', {class: 'table-tools'}, el('h2', {}, 'Tasks'), search, this.filters), this.body);
  }

  onlyStatus(status) {
    this.statuses = this.statuses.size === 1 && this.statuses.has(status) ? new Set() : new Set([status]);
    this.offset = 0;
    this.render();
    this.element.scrollIntoView({block: 'start', behavior: 'smooth'});
  }

  /* The tasks shown, in order: filtered by status and name, sorted, name breaking ties. */
  rows() {
    const text = this.text.toLowerCase();
    const shown = this.tasks.filter((task) =>
      (!this.statuses.size || this.statuses.has(task.status)) &&
      (!text || task.name.toLowerCase().includes(text)));
    const column = COLUMNS.find((c) => c.key === this.sort.key);
    const sign = this.sort.descending ? -1 : 1;
    return shown.sort((a, b) => sign * column.sort(a, b) || NATURAL.compare(a.name, b.name));
  }

  /* The status buttons (with their counts) and the rows. */
  render() {
    const counts = countStatuses(this.tasks);
    fill(this.filters, WORST_FIRST.filter((s) => counts[s]).map((status) => {
      const toggle = el('button', {type: 'button', class: 'status-filter', 'data-status': status,
        'aria-pressed': String(this.statuses.has(status)), style: `--chip: ${STATUS_COLORS[status]}`},
      `${STATUS_LABELS[status]} ${fmtCount(counts[status])}`);
      toggle.addEventListener('click', () => {
        if (this.statuses.has(status)) this.statuses.delete(status);
        else this.statuses.add(status);
        this.offset = 0;
        this.render();
      });
      return toggle;
    }));
    this.renderBody();
  }

  renderBody() {
    const rows = this.rows();
    if (this.offset >= rows.length) this.offset = Math.max(0, Math.floor((rows.length - 1) / TABLE_PAGE) * TABLE_PAGE);
    const page = rows.slice(this.offset, this.offset + TABLE_PAGE);
    const head = el('tr', {}, COLUMNS.map((column) => {
      if (!column.sort) return el('th', {}, column.label);
      const active = this.sort.key === column.key;
      const arrow = active ? (this.sort.descending ? ' ▾' : ' ▴') : '';
      return el('th', {'aria-sort': active ? (this.sort.descending ? 'descending' : 'ascending') : 'none'},
        el('button', {type: 'button', class: 'sort', 'data-sort': column.key, onclick: () => {
          this.sort = {key: column.key, descending: active ? !this.sort.descending : false};
          this.offset = 0;
          this.renderBody();
        }}, column.label + arrow));
    }));
    const body = el('tbody', {}, page.map((task) => this.row(task)));
    fill(this.body,
      el('table', {class: 'tasks'}, el('thead', {}, head), body),
      pager(this.offset, TABLE_PAGE, rows.length, (offset) => {
        this.offset = offset;
        this.renderBody();
      }));
  }

  row(task) {
    const row = el('tr', {'data-name': task.name, 'data-status': task.status, tabindex: 0,
      class: task.name === this.selected ? 'selected' : null},
    el('td', {}, chip(task.status)),
    el('td', {class: 'name'}, task.name),
    el('td', {class: 'reason'}, task.reason || '–'),
    el('td', {class: 'num'}, fmtDuration(task.duration)),
    el('td', {class: 'num'}, String(task.attempts ?? '–')),
    el('td', {class: 'num'}, fmtBytes(task.output_bytes)),
    el('td', {class: 'error', title: task.error || null}, task.error || ''));
    row.addEventListener('click', () => this.onSelect(task.name));
    row.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') this.onSelect(task.name);
    });
    return row;
  }

  markSelected(name) {
    this.selected = name;
    for (const row of this.element.querySelectorAll('tr.selected')) row.classList.remove('selected');
    for (const row of this.element.querySelectorAll('tr[data-name]')) {
      if (row.dataset.name === name) row.classList.add('selected');
    }
  }
}

// -- a task's panel --------------------------------------------------------------------------------

class TaskPanel {
  constructor(page) {
    this.page = page;
    this.task = null;
    this.element = el('aside', {class: 'task-panel', hidden: true, 'aria-label': 'task'});
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.task) this.close();
    });
  }

  close() {
    this.task = null;
    this.element.hidden = true;
    this.page.graph.markSelected(null);
    this.page.table.markSelected(null);
  }

  show(task) {
    const first = !this.task || this.task.name !== task.name;
    this.task = task;
    const runId = this.page.doc.id;
    const log = el('pre', {class: 'log'}, SOURCE.report ? task.log || '(no lines)' : 'Loading…');
    fill(this.element,
      el('div', {class: 'panel-head'},
        el('div', {},
          el('h2', {class: 'task-name'}, task.name),
          chip(task.status)),
        el('button', {type: 'button', class: 'close', 'aria-label': 'Close', onclick: () => this.close()}, '×')),
      task.error ? el('p', {class: 'task-error'}, task.error) : null,
      el('dl', {class: 'task-facts'}, taskFacts(task).map(([term, value]) =>
        [el('dt', {}, term), el('dd', {'data-fact': term}, value)])),
      this.links('Parents', task.parents),
      this.links('Children', this.page.children.get(task.name) || []),
      section('Parameters', params(task.params)),
      task.traceback ? section('Traceback', el('pre', {class: 'traceback'}, task.traceback)) : null,
      section('Log', log),
      section('Output', preview(task, SOURCE.resultLink(runId, task))));
    this.element.hidden = false;
    if (first) this.element.scrollTop = 0;
    if (!SOURCE.report) {
      SOURCE.taskLog(runId, task).then((text) => {
        if (this.task === task) log.textContent = text || '(no lines)';
      }, (error) => {
        if (this.task === task) log.textContent = `could not load the log: ${error.message}`;
      });
    }
  }

  links(title, names) {
    if (!names.length) return null;
    return section(title, el('ul', {class: 'links'}, names.map((name) => el('li', {},
      el('button', {type: 'button', class: 'link', onclick: () => this.page.select(name)},
        el('span', {class: 'dot', style: `--chip: ${STATUS_COLORS[(this.page.byName.get(name) || {}).status]}`}),
        name)))));
  }
}

function section(title, body) {
  return el('section', {class: 'panel-section', 'data-section': title.toLowerCase()}, el('h3', {}, title), body);
}

function taskFacts(task) {
  const facts = [
    ['why it ran', task.reason || (task.status === 'CACHED' ? 'cached result found' : '–')],
    ['duration', fmtDuration(task.duration)],
    ['attempts', String(task.attempts ?? '–')],
    ['started', fmtTime(task.started)],
    ['finished', fmtTime(task.finished)],
    ['class', [task.module, task.class].filter(Boolean).join('.') || '–'],
    ['tag', task.tag ?? '–'],
    ['key', el('code', {}, task.key)],
  ];
  return facts;
}

function params(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return el('p', {class: 'muted'}, 'none');
  return el('table', {class: 'params'}, el('tbody', {}, entries.map(([name, value]) =>
    el('tr', {}, el('th', {}, name), el('td', {}, el('code', {}, fmtValue(value)))))));
}

/* The output's preview (made when it was stored) and a link to the result. */
function preview(task, link) {
  const shown = task.preview;
  const facts = [];
  if (shown) {
    facts.push(['type', shown.type]);
    if (shown.shape) facts.push(['shape', `(${shown.shape.join(', ')})`]);
    if (shown.dtype) facts.push(['dtype', shown.dtype]);
    if (shown.length !== undefined && shown.length !== null) facts.push(['length', fmtCount(shown.length)]);
    if (shown.columns) facts.push(['columns', shown.columns.map(fmtValue).join(', ')]);
  }
  facts.push(['size', fmtBytes(task.output_bytes)]);
  const where = task.result_path;
  const download = where && link
    ? el('a', {class: 'download', href: link, download: SOURCE.report ? null : `${task.key}.dump`}, 'Download the result')
    : where ? el('code', {class: 'result-path'}, where) : null;
  if (!shown && !where) return el('p', {class: 'muted'}, 'no output');
  return el('div', {class: 'preview'},
    el('dl', {class: 'task-facts'}, facts.map(([term, value]) => [el('dt', {}, term), el('dd', {}, value)])),
    shown && shown.text ? el('pre', {class: 'preview-text'}, shown.text) : null,
    download,
    SOURCE.report && where && link ? el('div', {class: 'muted small'}, where) : null);
}

route('run', /^\/run\/([^/]+)$/, showRun);
