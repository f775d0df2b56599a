// Opened from disk (file://), browsers run no module scripts, no fetch and no service worker, so the page could never
// load its model. Say so, and how to serve the folder, instead of "Loading the model…" forever. (A classic script:
// it is the one thing that does run from file://.)
(function () {
  if (location.protocol !== 'file:') return;
  document.addEventListener('DOMContentLoaded', function () {
    var dir = decodeURIComponent(location.pathname.replace(/\/[^/]*$/, '/'));
    var hint = document.getElementById('file-hint');
    var status = document.getElementById('status');
    var text =
      'This page was opened from a file. Browsers do not run it from disk: serve the folder over HTTP, then open the address it prints. ' +
      'With neXt-Ray installed: nextray app serve "' + dir + '". Or, in that folder: python3 -m http.server 8000 and open http://127.0.0.1:8000/';
    if (hint) {
      hint.textContent = text;
      hint.hidden = false;
    }
    if (status) status.textContent = 'Not running: opened from a file (see below).';
    document.body.setAttribute('data-state', 'file');
  });
})();
