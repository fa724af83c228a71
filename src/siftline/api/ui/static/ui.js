/* Siftline inspector: progressive enhancement of the server-rendered pages. No dependencies, no build.
 * Data comes only from this server's /ui/api/… (same origin, session cookie). */
(function () {
  "use strict";

  var POLL_MS = 1000;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401) {  // the session ended: sign in again, then come back here
        location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
        throw new Error("signed out");
      }
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  /* Expand/collapse: any button with data-toggle and aria-controls (stages, results). */
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-toggle]") : null;
    if (!button) { return; }
    var target = document.getElementById(button.getAttribute("aria-controls"));
    if (!target) { return; }
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    target.hidden = !open;
  });

  /* ---- executions list ---------------------------------------------------------------------- */
  function initList() {
    var compare = $("#compare");
    var hint = $("#compare-hint");
    function picked() { return $all('input[name="pick"]').filter(function (b) { return b.checked; }); }
    function sync() {
      var n = picked().length;
      compare.disabled = n !== 2;
      hint.textContent = n === 2 ? "Compare these two executions." :
        n > 2 ? "Tick exactly two executions (" + n + " ticked)." : "Tick two executions to compare them.";
    }
    document.addEventListener("change", function (event) {
      if (event.target.name === "pick") { sync(); }
    });
    compare.addEventListener("click", function () {
      var ids = picked().sort(function (x, y) {  // a: the older one, b: the newer
        return x.dataset.created < y.dataset.created ? -1 : x.dataset.created > y.dataset.created ? 1 : 0;
      }).map(function (b) { return b.value; });
      if (ids.length === 2) {
        location.href = "/ui/compare?a=" + encodeURIComponent(ids[0]) + "&b=" + encodeURIComponent(ids[1]);
      }
    });
    sync();
    pollRows();
  }

  function setCell(row, col, html) {
    var cell = $('[data-col="' + col + '"]', row);
    if (cell && cell.innerHTML !== html) { cell.innerHTML = html; }
  }

  function escapeHTML(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function updateRow(row, data) {
    row.dataset.live = data.live ? "true" : "false";
    row.className = "status-" + data.status;
    var title = data.error ? ' title="' + escapeHTML(data.error) + '"' : "";
    setCell(row, "status", '<span class="badge badge-' + escapeHTML(data.status) + '"' + title + ">" + escapeHTML(data.status) + "</span>");
    setCell(row, "duration", escapeHTML(data.duration));
    setCell(row, "credits", escapeHTML(data.credits));
    setCell(row, "flow", escapeHTML(data.flow));
    setCell(row, "cache", data.cache_hit ? '<span class="tag tag-good">hit</span>' : escapeHTML(data.cache));
    setCell(row, "warnings", data.warnings ? '<span class="tag tag-warn">' + data.warnings + "</span>" : '<span class="muted">0</span>');
  }

  function pollRows() {
    var live = $all('#executions tr[data-live="true"]');
    var note = $("#live-note");
    if (note) { note.hidden = live.length === 0; }
    if (!live.length) { return; }
    var ids = live.map(function (r) { return r.dataset.id; });
    getJSON("/ui/api/executions?ids=" + encodeURIComponent(ids.join(","))).then(function (body) {
      body.executions.forEach(function (data) {
        var row = $('#executions tr[data-id="' + data.execution_id + '"]');
        if (row) { updateRow(row, data); }
      });
    }).catch(function () { /* try again on the next tick */ }).then(function () {
      setTimeout(pollRows, POLL_MS);
    });
  }

  /* ---- one execution ------------------------------------------------------------------------ */
  function initExecution() {
    pageResults();
    initRaw();
    var head = $("#head");
    if (head && head.dataset.live === "true") { setTimeout(function () { pollExecution(head.dataset.execution); }, POLL_MS); }
  }

  function pageResults() {
    var table = $("#results");
    var pager = $("#results-pager");
    if (!table || !pager) { return; }
    var size = parseInt(table.dataset.pageSize, 10) || 50;
    var bodies = $all("tbody.result", table);
    if (bodies.length <= size) { return; }
    var pages = Math.ceil(bodies.length / size);
    var current = 0;
    function show(page) {
      current = Math.max(0, Math.min(pages - 1, page));
      bodies.forEach(function (b, i) { b.hidden = Math.floor(i / size) !== current; });
      pager.innerHTML = "";
      var label = document.createElement("span");
      label.textContent = (current * size + 1) + "–" + Math.min(bodies.length, (current + 1) * size) + " of " + bodies.length;
      pager.appendChild(label);
      [["← Previous", current - 1, current === 0], ["Next →", current + 1, current === pages - 1]].forEach(function (spec) {
        var b = document.createElement("button");
        b.type = "button"; b.className = "btn btn-small"; b.textContent = spec[0]; b.disabled = spec[2];
        b.addEventListener("click", function () { show(spec[1]); });
        pager.appendChild(b);
      });
    }
    pager.hidden = false;
    show(0);
  }

  function initRaw() {
    var raw = $("#raw");
    if (!raw) { return; }
    raw.addEventListener("toggle", function () {
      if (!raw.open || raw.dataset.loaded) { return; }
      raw.dataset.loaded = "1";
      getJSON(raw.dataset.src).then(function (body) {
        $("#raw-json").textContent = JSON.stringify(body, null, 2);
      }).catch(function (err) {
        $("#raw-json").textContent = "Could not load the record: " + err.message;
        delete raw.dataset.loaded;
      });
    });
  }

  function swap(id, html) {
    var el = document.getElementById(id);
    if (!el || html === undefined) { return; }
    var open = $all('[data-toggle][aria-expanded="true"]', el).map(function (b) { return b.getAttribute("aria-controls"); });
    el.innerHTML = html;
    open.forEach(function (target) {
      var b = $('[aria-controls="' + target + '"]', el);
      var t = document.getElementById(target);
      if (b && t) { b.setAttribute("aria-expanded", "true"); t.hidden = false; }
    });
  }

  function pollExecution(id) {
    getJSON("/ui/api/executions/" + encodeURIComponent(id) + "/live").then(function (body) {
      if (!body.live) { location.reload(); return; }
      swap("facts", body.html.facts);
      swap("waterfall", body.html.waterfall);
      swap("funnel", body.html.funnel);
      var text = $("#progress-text");
      text.textContent = "";
      text.appendChild(document.createTextNode("Running: " + body.stages_completed + " of " + body.total_stages + " stages done"));
      if (body.current_stage) {
        text.appendChild(document.createTextNode(", now "));
        var strong = document.createElement("strong");
        strong.textContent = body.current_stage;
        text.appendChild(strong);
      }
      text.appendChild(document.createTextNode("."));
      var bar = $("#progress-bar");
      bar.max = Math.max(1, body.total_stages); bar.value = body.stages_completed;
      setTimeout(function () { pollExecution(id); }, POLL_MS);
    }).catch(function () { setTimeout(function () { pollExecution(id); }, POLL_MS * 2); });
  }

  /* ---- two executions compared -------------------------------------------------------------- */
  function initCompare() {
    var ranks = $("#ranks");
    if (!ranks) { return; }
    var lit = [];
    function light(doc) {  // a document's row in a, its row in b and the line between them
      lit.forEach(function (el) { el.classList.remove("hl"); });
      lit = doc === null ? [] : $all('[data-doc="' + doc + '"]', ranks);
      lit.forEach(function (el) { el.classList.add("hl"); });
    }
    ranks.addEventListener("mouseover", function (event) {
      var hit = event.target.closest ? event.target.closest("[data-doc]") : null;
      light(hit ? hit.getAttribute("data-doc") : null);
    });
    ranks.addEventListener("mouseleave", function () { light(null); });
  }

  var page = document.body.dataset.page;
  if (page === "executions") { initList(); }
  if (page === "execution") { initExecution(); }
  if (page === "compare") { initCompare(); }
})();
