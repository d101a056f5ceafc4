/* pyperunner's run browser: the UI's other pages. The runs list (#/: every run newest first,
 * searchable and filterable, paged by the server, two picked to compare), a comparison of two
 * runs (#/compare/<a>/<b>: added and removed tasks, what changed in each common task, changed
 * first) and the store's cache (#/cache: entries by task, the runs using each, what gc would
 * remove). */
'use strict';

const RUNS_PAGE = 50;
const COMPARE_PAGE = 200;
const RUNS_REFRESH_MS = 2000;
const CACHE_PAGE = 50;
const CACHE_OPEN = 20; /* up to this many tasks, each shows its entries */
const STATES = ['running', 'finished', 'interrupted', 'killed'];

// -- the runs list ---------------------------------------------------------------------------------

/* The list's filters and the two runs picked, kept while the user opens runs and comes back. */
const runsState = {q: '', state: '', failed: false, offset: 0, picked: [], started: {}};

async function showRuns(main, args, token) {
  document.title = 'pyperunner · runs';
  const search = el('input', {type: 'search', class: 'run-search', placeholder: 'Search pipelines',
    'aria-label': 'Search pipelines', value: runsState.q});
  const state = el('select', {class: 'run-state', 'aria-label': 'State'},
    el('option', {value: ''}, 'any state'),
    STATES.map((s) => el('option', {value: s, selected: runsState.state === s}, s)));
  const failed = el('input', {type: 'checkbox', class: 'run-failed', checked: runsState.failed});
  const compare = el('button', {type: 'button', class: 'compare-button primary'});
  const list = el('div', {class: 'runs-list'});
  fill(main,
    el('div', {class: 'page-head'}, el('h1', {}, 'Runs'),
      el('div', {class: 'filters'}, search, state,
        el('label', {class: 'check'}, failed, 'with failures'), compare)),
    list);

  const pickedText = () => {
    const n = runsState.picked.length;
    compare.textContent = n === 2 ? 'Compare the two runs' : `Pick ${2 - n} run${n === 1 ? '' : 's'} to compare`;
    compare.disabled = n !== 2;
  };
  compare.addEventListener('click', () => {
    /* the older run first: the comparison tells what the newer one changed */
    const when = (id) => `${runsState.started[id] || ''} ${id}`;
    const [a, b] = [...runsState.picked].sort((x, y) => (when(x) < when(y) ? -1 : 1));
    location.hash = `#/compare/${encodeURIComponent(a)}/${encodeURIComponent(b)}`;
  });
  pickedText();

  let timer = null;
  let asked = 0;
  const load = async () => {
    clearTimeout(timer);
    const number = ++asked;
    const query = {offset: runsState.offset, limit: RUNS_PAGE};
    if (runsState.q) query.q = runsState.q;
    if (runsState.state) query.state = runsState.state;
    if (runsState.failed) query.failed = 1;
    const answer = await SOURCE.runs(query);
    if (!isCurrent(token) || number !== asked) return;
    drawRuns(list, answer, () => pickedText(), (offset) => {
      runsState.offset = offset;
      load();
    });
    if (answer.runs.some((run) => run.state === 'running')) timer = setTimeout(load, RUNS_REFRESH_MS);
  };
  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      runsState.q = search.value.trim();
      runsState.offset = 0;
      load();
    }, 200);
  });
  state.addEventListener('change', () => {
    runsState.state = state.value;
    runsState.offset = 0;
    load();
  });
  failed.addEventListener('change', () => {
    runsState.failed = failed.checked;
    runsState.offset = 0;
    load();
  });
  await load();
}

function drawRuns(list, answer, onPick, onPage) {
  if (!answer.runs.length) {
    fill(list, el('p', {class: 'empty'}, answer.total ? 'No run on this page.' : 'No run matches.'));
    return;
  }
  const rows = answer.runs.map((run) => {
    const href = `#/run/${encodeURIComponent(run.id)}`;
    const pick = el('input', {type: 'checkbox', class: 'pick', 'aria-label': `pick ${run.id} to compare`,
      checked: runsState.picked.includes(run.id)});
    pick.addEventListener('change', () => {
      runsState.started[run.id] = run.started;
      runsState.picked = runsState.picked.filter((id) => id !== run.id);
      if (pick.checked) runsState.picked.push(run.id);
      if (runsState.picked.length > 2) runsState.picked.shift();
      for (const box of list.querySelectorAll('input.pick')) {
        box.checked = runsState.picked.includes(box.closest('tr').dataset.run);
      }
      onPick();
    });
    return el('tr', {'data-run': run.id, 'data-state': run.state},
      el('td', {class: 'pick-cell'}, pick),
      el('td', {class: 'pipeline'}, el('a', {href, class: 'run-link'}, run.pipeline),
        el('div', {class: 'run-id muted small'}, run.id)),
      el('td', {}, stateBadge(run.state)),
      el('td', {class: 'when'}, fmtTime(run.started)),
      el('td', {class: 'num'}, fmtDuration(run.duration)),
      el('td', {class: 'num'}, fmtCount(run.tasks)),
      el('td', {}, countChips(run.counts || {}),
        run.error ? el('div', {class: 'run-error small'}, run.error) : null));
  });
  fill(list,
    el('table', {class: 'runs'},
      el('thead', {}, el('tr', {}, ['', 'Pipeline', 'State', 'Started', 'Duration', 'Tasks', 'By status']
        .map((label) => el('th', {}, label)))),
      el('tbody', {}, rows)),
    pager(runsState.offset, RUNS_PAGE, answer.total, onPage));
}

// -- two runs compared -------------------------------------------------------------------------------

async function showCompare(main, [a, b], token) {
  loading(main);
  const doc = await SOURCE.compare(a, b);
  if (!isCurrent(token)) return;
  document.title = `${doc.a.id} vs ${doc.b.id}`;
  const changed = doc.tasks.filter((task) => !task.same_key);
  const differs = (task) => task.a.status !== task.b.status;
  /* changed tasks first, then those whose status differs, then the rest; by name within */
  const order = (task) => (task.same_key ? (differs(task) ? 1 : 2) : 0);
  const tasks = [...doc.tasks].sort((x, y) => order(x) - order(y) || NATURAL.compare(x.name, y.name));
  const runCard = (label, run) => el('div', {class: 'run-card', 'data-side': label},
    el('div', {class: 'side-label'}, label === 'a' ? 'first run' : 'second run'),
    el('a', {href: `#/run/${encodeURIComponent(run.id)}`, class: 'run-link'}, run.pipeline),
    el('div', {class: 'muted small'}, run.id),
    el('div', {}, stateBadge(run.state), ` ${fmtTime(run.started)} · ${fmtDuration(run.duration)}`),
    countChips(run.counts || {}));
  const names = (title, list, cls) => el('div', {class: `name-list ${cls}`},
    el('h3', {}, `${title} (${list.length})`),
    list.length ? el('ul', {}, list.map((name) => el('li', {}, name))) : el('p', {class: 'muted'}, 'none'));
  const onlyChanged = el('input', {type: 'checkbox', class: 'only-changed'});
  const table = el('div', {class: 'compare-table'});
  let offset = 0;
  const drawTable = () => {
    const shown = onlyChanged.checked ? tasks.filter((task) => !task.same_key || differs(task)) : tasks;
    if (offset >= shown.length) offset = 0;
    fill(table,
      el('table', {class: 'compare'},
        el('thead', {}, el('tr', {}, ['Task', 'What changed', 'Status', 'Duration', 'Why it ran (second)']
          .map((label) => el('th', {}, label)))),
        el('tbody', {}, shown.slice(offset, offset + COMPARE_PAGE).map(compareRow))),
      pager(offset, COMPARE_PAGE, shown.length, (next) => {
        offset = next;
        drawTable();
      }));
  };
  onlyChanged.addEventListener('change', () => {
    offset = 0;
    drawTable();
  });
  fill(main,
    el('div', {class: 'page-head'}, el('h1', {}, 'Comparison')),
    el('div', {class: 'run-cards'}, runCard('a', doc.a), el('div', {class: 'versus'}, '→'), runCard('b', doc.b)),
    el('p', {class: 'summary'}, `${fmtCount(changed.length)} of ${fmtCount(doc.tasks.length)} common tasks ` +
      `changed their key; ${fmtCount(doc.added.length)} added, ${fmtCount(doc.removed.length)} removed.`),
    el('div', {class: 'name-lists'}, names('Added', doc.added, 'added'), names('Removed', doc.removed, 'removed')),
    el('div', {class: 'table-tools'}, el('h2', {}, 'Common tasks'),
      el('label', {class: 'check'}, onlyChanged, 'only changed tasks')),
    table);
  drawTable();
}

function compareRow(task) {
  const changes = task.changes.length
    ? el('ul', {class: 'changes'}, task.changes.map((change) => el('li', {class: 'change'}, change)))
    : el('span', {class: 'muted'}, 'same key');
  return el('tr', {'data-name': task.name, class: task.same_key ? 'same' : 'changed'},
    el('td', {class: 'name'}, task.name),
    el('td', {}, changes),
    el('td', {class: 'pair'}, chip(task.a.status), ' → ', chip(task.b.status)),
    el('td', {class: 'num pair'}, `${fmtDuration(task.a.duration)} → ${fmtDuration(task.b.duration)}`),
    el('td', {class: 'reason'}, task.b.reason || (task.b.status === 'CACHED' ? 'cached' : '–')));
}

// -- the cache ---------------------------------------------------------------------------------------

async function showCache(main, args, token) {
  loading(main);
  document.title = 'pyperunner · cache';
  const doc = await SOURCE.cache();
  if (!isCurrent(token)) return;
  const onlyGarbage = el('input', {type: 'checkbox', class: 'only-garbage'});
  const list = el('div', {class: 'cache-list'});
  const tasks = [...doc.tasks].sort((x, y) => y.bytes - x.bytes || NATURAL.compare(x.name, y.name));
  let offset = 0;
  const draw = () => {
    const shown = tasks
      .map((task) => ({...task, entries: task.entries.filter((e) => !onlyGarbage.checked || e.garbage)}))
      .filter((task) => task.entries.length);
    const open = shown.length <= CACHE_OPEN;
    fill(list, shown.length
      ? shown.slice(offset, offset + CACHE_PAGE).map((task) => cacheTask(task, open))
      : el('p', {class: 'empty'}, 'Nothing to show.'),
    shown.length > CACHE_PAGE ? pager(offset, CACHE_PAGE, shown.length, (next) => {
      offset = next;
      draw();
    }) : null);
  };
  onlyGarbage.addEventListener('change', () => {
    offset = 0;
    draw();
  });
  fill(main,
    el('div', {class: 'page-head'}, el('h1', {}, 'Cache'),
      el('div', {class: 'filters'}, el('label', {class: 'check'}, onlyGarbage, 'only what gc would remove'))),
    el('dl', {class: 'facts'},
      el('div', {class: 'fact'}, el('dt', {}, 'stored'), el('dd', {}, fmtBytes(doc.total_bytes))),
      el('div', {class: 'fact'}, el('dt', {}, 'gc would remove'),
        el('dd', {class: 'garbage-total'}, `${fmtBytes(doc.garbage_bytes)} in ${plural(doc.garbage_entries, 'entry', 'entries')}`)),
      el('div', {class: 'fact'}, el('dt', {}, 'data paths'), el('dd', {}, (doc.data_paths || []).join(', ')))),
    el('p', {class: 'muted small'}, 'A preview: nothing is deleted here. pyperunner gc --keep LOG_PATH ' +
      '--delete removes the entries no kept run uses.'),
    list);
  draw();
}

function cacheTask(task, open) {
  const garbage = task.entries.filter((entry) => entry.garbage).length;
  return el('details', {class: 'cache-task', 'data-task': task.name, open},
    el('summary', {},
      el('span', {class: 'name'}, task.name),
      el('span', {class: 'muted'}, ` ${plural(task.entries.length, 'entry', 'entries')} · ${fmtBytes(task.bytes)}`),
      garbage ? el('span', {class: 'badge garbage'}, `${fmtCount(garbage)} unused`) : null),
    el('table', {class: 'entries'},
      el('thead', {}, el('tr', {}, ['Key', 'Size', 'Stored', 'Used by runs', ''].map((l) => el('th', {}, l)))),
      el('tbody', {}, task.entries.map((entry) => el('tr', {'data-key': entry.key, class: entry.garbage ? 'garbage' : null},
        el('td', {}, el('code', {}, entry.key)),
        el('td', {class: 'num'}, fmtBytes(entry.bytes)),
        el('td', {}, fmtTime(entry.stored)),
        el('td', {}, entry.runs.length
          ? entry.runs.map((id) => el('a', {href: `#/run/${encodeURIComponent(id)}`, class: 'run-link small'}, id))
          : el('span', {class: 'muted'}, 'none')),
        el('td', {}, entry.garbage ? el('span', {class: 'badge garbage'}, 'gc would remove') : null))))));
}

route('runs', /^\/?$/, showRuns);
route('compare', /^\/compare\/([^/]+)\/([^/]+)$/, showCompare);
route('cache', /^\/cache$/, showCache);
