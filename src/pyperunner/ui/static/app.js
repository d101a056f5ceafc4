/* pyperunner's run browser, shared part: building DOM nodes, formatting, task statuses, where
 * the data comes from (the UI's JSON API, or the run document report.html carries) and the hash
 * router the pages register with. Loaded first; graph.js, runpage.js, pages.js and boot.js
 * follow. Every string from a run goes into the page through textContent or an attribute,
 * never as markup. */
'use strict';

/* Face colours of the statuses: report/layout.py's STATUS_COLORS. */
const STATUS_COLORS = {
  NOT_STARTED: '#d9d9d9',
  RUNNING: '#6baed6',
  SUCCESS: '#74c476',
  CACHED: '#c7e9c0',
  FAILURE: '#fb6a4a',
  CANT_RUN: '#fdae6b',
  INTERRUPTED: '#bcbddc',
};

const STATUS_LABELS = {
  NOT_STARTED: 'not started',
  RUNNING: 'running',
  SUCCESS: 'success',
  CACHED: 'cached',
  FAILURE: 'failure',
  CANT_RUN: "can't run",
  INTERRUPTED: 'interrupted',
};

/* The order "failures first" sorts in, and a group's colour: its worst status. */
const WORST_FIRST = [
  'FAILURE', 'INTERRUPTED', 'CANT_RUN', 'RUNNING', 'NOT_STARTED', 'SUCCESS', 'CACHED',
];

const SVG_NS = 'http://www.w3.org/2000/svg';

// -- building the page ------------------------------------------------------------------------

/* Set attributes, listeners (functions under on...) and children on a new element. Strings
 * become text nodes; null, undefined and false are left out; arrays are flattened. */
function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/* An HTML element: el('a', {href: '#/'}, 'text', otherNode). */
function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/* An SVG element, as el. */
function svgEl(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/* Replace a node's children (as el does: null and false are left out). */
function fill(node, ...children) {
  append(clear(node), children);
  return node;
}

// -- formatting --------------------------------------------------------------------------------

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/* A time as "2024-01-31 12:00:05": from an ISO string (runs) or seconds since 1970 (tasks). */
function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '–';
  if (typeof value === 'number') {
    const date = new Date(value * 1000);
    const pad = (n) => String(n).padStart(2, '0');
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }
  return String(value).replace('T', ' ');
}

function fmtCount(n) {
  return Number(n).toLocaleString('en-US');
}

/* "1 entry", "3 entries". */
function plural(n, one, many) {
  return `${fmtCount(n)} ${n === 1 ? one : many}`;
}

/* A parameter's value as short text: strings as they are, anything else as JSON. */
function fmtValue(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/* A file:// link to a local path; null for a URL of a remote store (shown as text instead). */
function fileUrl(path) {
  if (!path || /^[a-z][a-z0-9+.-]*:\/\//i.test(path)) return null;
  let slashed = String(path).replace(/\\/g, '/');
  if (!slashed.startsWith('/')) slashed = '/' + slashed;
  return 'file://' + slashed.split('/').map(encodeURIComponent).join('/');
}

// -- statuses ----------------------------------------------------------------------------------

function statusRank(status) {
  const rank = WORST_FIRST.indexOf(status);
  return rank < 0 ? WORST_FIRST.length : rank;
}

function worstStatus(counts) {
  return WORST_FIRST.find((status) => counts[status]) || 'NOT_STARTED';
}

/* Each task's children, by name (parents not among the tasks are left out). */
function childrenOf(tasks) {
  const children = new Map(tasks.map((task) => [task.name, []]));
  for (const task of tasks) {
    for (const parent of task.parents) if (children.has(parent)) children.get(parent).push(task.name);
  }
  return children;
}

function countStatuses(tasks) {
  const counts = {};
  for (const task of tasks) counts[task.status] = (counts[task.status] || 0) + 1;
  return counts;
}

/* A coloured status chip; text defaults to the status' label. */
function chip(status, text) {
  return el('span', {
    class: 'chip',
    'data-status': status,
    style: `--chip: ${STATUS_COLORS[status] || '#eee'}`,
  }, text === undefined ? STATUS_LABELS[status] || status : text);
}

/* One chip per status present, worst first ("2 failure"); onClick(status) makes them buttons. */
function countChips(counts, onClick) {
  return el('span', {class: 'chips'}, WORST_FIRST.filter((s) => counts[s]).map((status) => {
    const label = `${fmtCount(counts[status])} ${STATUS_LABELS[status]}`;
    if (!onClick) return chip(status, label);
    const button = chip(status, label);
    button.setAttribute('role', 'button');
    button.setAttribute('tabindex', '0');
    button.addEventListener('click', () => onClick(status));
    return button;
  }));
}

function stateBadge(state) {
  return el('span', {class: `state state-${state}`, 'data-state': state}, state);
}

// -- where the data comes from ------------------------------------------------------------------

/* The UI's JSON API, under the page's own address. */
function apiSource() {
  const id = encodeURIComponent;
  const get = async (path) => {
    const response = await fetch(path, {headers: {Accept: 'application/json'}});
    if (response.ok) return response.json();
    const text = await response.text(); /* why, as text or as {"error": why} */
    let why = text.trim() || response.statusText;
    try {
      why = JSON.parse(text).error || why;
    } catch (notJson) { /* plain text */ }
    throw new Error(`${response.status}: ${why} (${path})`);
  };
  return {
    report: false,
    live: true,
    runs: (query) => get('api/runs?' + new URLSearchParams(query)),
    run: (runId) => get(`api/runs/${id(runId)}`),
    changes: (runId, since) => get(`api/runs/${id(runId)}/changes?since=${since}`),
    taskLog: async (runId, task) => (await get(`api/runs/${id(runId)}/tasks/${id(task.key)}/log`)).log,
    resultLink: (runId, task) => `api/runs/${id(runId)}/tasks/${id(task.key)}/result`,
    compare: (a, b) => get(`api/compare?a=${id(a)}&b=${id(b)}`),
    cache: () => get('api/cache'),
  };
}

/* The one run report.html carries, with each task's log lines. */
function embeddedSource(doc) {
  return {
    report: true,
    live: false,
    run: async () => doc,
    taskLog: async (runId, task) => task.log || '',
    resultLink: (runId, task) => fileUrl(task.result_path),
  };
}

// -- routing -----------------------------------------------------------------------------------

const ROUTES = [];
let pageToken = 0;

/* Register a page: pattern matches the hash ("#/run/<id>"), its groups (URL-decoded) are given
 * to render(main, args, token). */
function route(name, pattern, render) {
  ROUTES.push({name, pattern, render});
}

/* Whether a page drawn under token is still the one shown (async work checks before drawing). */
function isCurrent(token) {
  return token === pageToken;
}

function showRoute(main, hash) {
  const token = ++pageToken;
  const path = hash.replace(/^#/, '') || '/';
  for (const {name, pattern, render} of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    for (const link of document.querySelectorAll('[data-nav]')) {
      link.classList.toggle('active', link.dataset.nav === name);
    }
    const args = match.slice(1).map(decodeURIComponent);
    clear(main);
    Promise.resolve(render(main, args, token)).catch((error) => {
      if (isCurrent(token)) showError(main, error);
    });
    return;
  }
  fill(main, el('p', {class: 'empty'}, 'No such page. ', el('a', {href: '#/'}, 'All runs')));
}

function showError(main, error) {
  fill(main, el('div', {class: 'error-box'}, el('strong', {}, 'Could not load this page. '),
    String(error && error.message ? error.message : error)));
}

function loading(main) {
  fill(main, el('p', {class: 'loading'}, 'Loading…'));
}

/* Page through rows: "1–100 of 5,000" and buttons; onPage(offset) shows another page. */
function pager(offset, limit, total, onPage) {
  const last = Math.min(offset + limit, total);
  return el('div', {class: 'pager'},
    el('span', {class: 'pager-text'},
      total ? `${fmtCount(offset + 1)}–${fmtCount(last)} of ${fmtCount(total)}` : 'none'),
    el('button', {type: 'button', class: 'pager-prev', disabled: offset <= 0,
      onclick: () => onPage(Math.max(0, offset - limit))}, '‹ Previous'),
    el('button', {type: 'button', class: 'pager-next', disabled: last >= total,
      onclick: () => onPage(offset + limit)}, 'Next ›'));
}
