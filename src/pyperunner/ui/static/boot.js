/* pyperunner's run browser, started last: picks where the data comes from (the run document a
 * report carries, else the UI's API) and shows the page the address names. A report shows its one
 * run whatever the address says. */
'use strict';

const EMBEDDED = document.getElementById('pyperunner-data');
const SOURCE = EMBEDDED ? embeddedSource(JSON.parse(EMBEDDED.textContent)) : apiSource();

function boot() {
  const main = document.getElementById('app');
  if (SOURCE.report) {
    document.body.classList.add('report');
    showRun(main, [''], ++pageToken).catch((error) => showError(main, error));
    return;
  }
  window.addEventListener('hashchange', () => showRoute(main, location.hash));
  showRoute(main, location.hash);
}

boot();
