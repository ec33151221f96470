// ccspec dashboard: server-rendered pages kept live by server-sent events (/api/events).
// Plain JavaScript, no build step. Text goes in with textContent, never as HTML.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const FINAL = ["succeeded", "failed", "timed_out", "cancelled", "skipped", "lost"];

  function setLive(state, text) {
    body.dataset.sse = state;
    const live = document.getElementById("live");
    const label = document.getElementById("live-text");
    if (live) live.className = "live live-" + state;
    if (label) label.textContent = text;
  }

  // Run fn at most once per `ms`, never twice at once; a call during a run runs it again after.
  function debounce(fn, ms) {
    let timer = null;
    let running = false;
    let again = false;
    function schedule() {
      if (!timer) timer = setTimeout(run, ms);
    }
    async function run() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      try { await fn(); } catch (e) { /* the next event tries again */ }
      running = false;
      if (again) { again = false; schedule(); }
    }
    return schedule;
  }

  function badge(cls, text) {
    const span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = text;
    return span;
  }

  function setBadge(el, prefix, value) {
    el.className = "badge " + prefix + value;
    el.textContent = value;
  }

  function counts(container, map) {
    container.replaceChildren();
    Object.keys(map).sort().forEach(function (state) {
      container.appendChild(badge("state-" + state, map[state] + " " + state));
      container.appendChild(document.createTextNode(" "));
    });
  }

  function pct(progress) {
    return progress === undefined || progress === null ? "" : Math.round(progress) + "%";
  }

  function connect(url, handlers) {
    if (!window.EventSource) { setLive("off", "no live updates"); return; }
    const source = new EventSource(url);
    source.onopen = function () { setLive("open", "live"); };
    source.onerror = function () { setLive("error", "reconnecting"); };
    Object.keys(handlers).forEach(function (type) {
      source.addEventListener(type, function (message) {
        let data;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        handlers[type](data);
      });
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-cache" });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  // -- the list of workflows ---------------------------------------------------------

  // specs with errors first, then failed ones, then the rest in the API's order (as the
  // server renders the page: ccspec.server.dashboard.errors_first)
  function rank(w) {
    if ((w.errors && w.errors.length) || w.phase === "invalid" || w.phase === "error") return 0;
    return w.phase === "failed" ? 1 : 2;
  }

  function indexPage() {
    const tbody = document.querySelector("#workflows tbody");
    const refresh = debounce(async function () {
      const list = await getJSON("/api/workflows");
      tbody.replaceChildren();
      const ordered = list.workflows.map(function (w, i) { return [rank(w), i, w]; });
      ordered.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      ordered.map(function (e) { return e[2]; }).forEach(function (w) {
        const tr = document.createElement("tr");
        tr.dataset.workflow = w.name;
        tr.dataset.phase = w.phase;
        const name = document.createElement("td");
        name.className = "name";
        const link = document.createElement("a");
        link.href = "/workflows/" + encodeURIComponent(w.name);
        link.textContent = w.name;
        name.appendChild(link);
        const phase = document.createElement("td");
        phase.className = "phase";
        phase.appendChild(badge("phase-" + w.phase, w.phase));
        const total = document.createElement("td");
        total.className = "total";
        total.textContent = w.total;
        const done = document.createElement("td");
        done.className = "done";
        const bar = document.createElement("progress");
        bar.max = w.total || 1;
        bar.value = (w.counts && w.counts.succeeded) || 0;
        done.appendChild(bar);
        const states = document.createElement("td");
        states.className = "counts";
        counts(states, w.counts || {});
        const updated = document.createElement("td");
        updated.className = "updated";
        updated.textContent = w.updated || "";
        [name, phase, total, done, states, updated].forEach(function (td) { tr.appendChild(td); });
        tbody.appendChild(tr);
      });
    }, 300);
    connect("/api/events", { job: refresh });
  }

  // -- one workflow --------------------------------------------------------------------

  function cell(tr, cls) {
    return tr.querySelector("td." + cls);
  }

  function newRow(workflow, id) {
    const tr = document.createElement("tr");
    tr.dataset.job = id;
    ["job", "state", "progress", "attempt", "host", "started", "seconds", "cpu", "mem", "message", "outputs"].forEach(function (cls) {
      const td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
    });
    const link = document.createElement("a");
    link.href = "/workflows/" + encodeURIComponent(workflow) + "/jobs/" + encodeURIComponent(id);
    link.textContent = id;
    cell(tr, "job").appendChild(link);
    cell(tr, "state").appendChild(badge("state-pending", "pending"));
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const label = document.createElement("span");
    label.className = "pct";
    cell(tr, "progress").append(bar, " ", label);
    return tr;
  }

  function showState(tr, state) {
    tr.dataset.state = state;
    tr.classList.remove("planned");
    setBadge(cell(tr, "state").querySelector(".badge"), "state-", state);
  }

  function showProgress(tr, progress, state) {
    const value = progress === undefined || progress === null ? (state === "succeeded" ? 100 : 0) : progress;
    cell(tr, "progress").querySelector("progress").value = value;
    cell(tr, "progress").querySelector(".pct").textContent = pct(progress);
  }

  // CPU and peak memory of a job's last attempt, and the warning when they did not fit its resources
  function showUsage(tr, usage) {
    cell(tr, "cpu").textContent = usage.cpu === undefined ? "" : usage.cpu.toFixed(1) + "s";
    const mem = cell(tr, "mem");
    mem.textContent = usage.max_rss === undefined ? "" : (usage.max_rss / 1048576).toFixed(1) + "M";
    mem.classList.toggle("warn", Boolean(usage.warning));
    if (usage.warning) {
      const note = document.createElement("span");
      note.className = "warning";
      note.textContent = " \u26a0 " + usage.warning;
      mem.appendChild(note);
    }
  }

  function workflowPage() {
    const name = body.dataset.workflow;
    const tbody = document.querySelector("#jobs tbody");
    const graph = document.getElementById("graph");
    const timeline = document.getElementById("timeline");
    const base = "/api/workflows/" + encodeURIComponent(name);
    let version = 0;
    let refreshes = 0;
    function row(id) {
      return tbody.querySelector('tr[data-job="' + CSS.escape(id) + '"]');
    }
    const refresh = debounce(async function () {
      const w = await getJSON(base);
      setBadge(document.getElementById("phase"), "phase-", w.phase);
      counts(document.getElementById("counts"), w.counts || {});
      w.jobs.forEach(function (j) {
        let tr = row(j.id);
        if (!tr) {
          tr = newRow(name, j.id);
          tbody.appendChild(tr);
        }
        showState(tr, j.state);
        showProgress(tr, j.progress, j.state);
        cell(tr, "attempt").textContent = j.attempt;
        cell(tr, "host").textContent = j.host || "";
        cell(tr, "started").textContent = j.started || "";
        cell(tr, "seconds").textContent = j.seconds === undefined ? "" : j.seconds.toFixed(1) + "s";
        showUsage(tr, j.usage || {});
        cell(tr, "message").textContent = j.message || j.reason || "";
        cell(tr, "outputs").textContent = j.outputs && Object.keys(j.outputs).length ? JSON.stringify(j.outputs) : "";
      });
      version += 1;
      graph.src = base + "/graph.svg?v=" + version;
      timeline.src = base + "/timeline.svg?v=" + version;
      refreshes += 1;
      body.dataset.refreshed = String(refreshes);
    }, 300);
    connect(base.replace("/api/workflows/", "/api/events?workflow="), {
      job: function (e) {
        const tr = e.job && row(e.job);
        if (tr && e.state) showState(tr, e.state);
        refresh();
      },
      progress: function (e) {
        const tr = e.job && row(e.job);
        if (tr) {
          showProgress(tr, e.progress, tr.dataset.state);
          if (e.message) cell(tr, "message").textContent = e.message;
        }
      },
    });
  }

  // -- one job and its log -------------------------------------------------------------

  function jobPage() {
    const pre = document.getElementById("log");
    const state = document.getElementById("state");
    const url = pre.dataset.log;
    const decoder = new TextDecoder();
    let offset = 0;
    let ended = FINAL.indexOf(body.dataset.state) >= 0;
    async function read() {
      if (!url) return;
      const response = await fetch(url + "&offset=" + offset, { credentials: "same-origin", cache: "no-cache" });
      if (response.ok) {
        const bytes = await response.arrayBuffer();
        const size = parseInt(response.headers.get("X-Log-Size") || "0", 10);
        if (bytes.byteLength) {
          pre.appendChild(document.createTextNode(decoder.decode(bytes, { stream: true })));
          offset += bytes.byteLength;
        }
        if (size > offset) { setTimeout(read, 0); return; }
      }
      if (!ended) setTimeout(read, 1000);
    }
    read();
    connect("/api/events?workflow=" + encodeURIComponent(body.dataset.workflow), {
      job: function (e) {
        if (e.job !== body.dataset.job || !e.state) return;
        setBadge(state, "state-", e.state);
        body.dataset.state = e.state;
        if (FINAL.indexOf(e.state) >= 0 && !ended) { ended = true; setTimeout(read, 300); }
        if (e.state === "succeeded") document.getElementById("progress").value = 100;
      },
      progress: function (e) {
        if (e.job !== body.dataset.job) return;
        document.getElementById("progress").value = e.progress || 0;
        if (e.message) document.getElementById("message").textContent = e.message;
      },
    });
  }

  // -- signing in ----------------------------------------------------------------------

  function loginPage() {
    const form = document.getElementById("login");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const token = document.getElementById("token").value.trim();
      const response = await fetch("/api/session", {
        method: "POST", credentials: "same-origin", headers: { Authorization: "Bearer " + token },
      });
      if (response.ok) { window.location.reload(); return; }
      document.getElementById("login-error").hidden = false;
    });
    setLive("off", "");
  }

  if (page === "index") indexPage();
  else if (page === "workflow") workflowPage();
  else if (page === "job") jobPage();
  else if (page === "login") loginPage();
})();
