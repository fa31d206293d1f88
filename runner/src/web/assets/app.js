// LoadDensity dashboard: listens to the server's events (one update a second) and changes only
// what changed.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const { ChartHistory, LineChart, formatNumber } = window.LDChart;

  // Row layout sent by the server: [type, name, requests, failures, median, p95, p99, average,
  // min, max, average size, current rps, current failures/s].
  const COLUMNS = 13;
  function ms(v) {
    if (v >= 100) return String(Math.round(v));
    if (v >= 1) return v.toFixed(1);
    return v === 0 ? "0" : v.toFixed(2);
  }
  const FORMAT = [
    String, String, String, String, ms, ms, ms, ms, ms, ms,
    (v) => String(Math.round(v)),
    (v) => v.toFixed(1),
    (v) => v.toFixed(1),
  ];

  const view = {
    history: new ChartHistory(null),
    rows: new Map(), // key -> {tr, cells, texts, data}
    total: null,
    sort: null, // {col, desc}
    order: "",
    errorsText: "",
    workersText: "",
    ended: false,
    last: null,
    source: null,
    lastSpawnRate: 10,
    targetUsers: 0,
    saturationShown: false,
  };

  const charts = {
    rps: new LineChart($("chart-rps"), [
      { label: "RPS", color: "#2e9e6b", index: 3 },
      { label: "Failures/s", color: "#c8412f", index: 4 },
      { label: "Target iterations/s", color: "#8a8f98", index: 8, optional: true },
      { label: "Iterations/s", color: "#1f6f8b", index: 9, optional: true, shownWith: 8 },
    ], $("legend-rps")),
    latency: new LineChart($("chart-latency"), [
      { label: "Median", color: "#3d7bd9", index: 5 },
      { label: "95th percentile", color: "#e08a2c", index: 6 },
      { label: "95th percentile, corrected", color: "#b5338a", index: 7, optional: true },
    ], $("legend-latency")),
    users: new LineChart($("chart-users"), [
      { label: "Users", color: "#7a55c7", index: 2 },
    ], $("legend-users")),
  };

  function drawCharts() {
    const points = view.history.points();
    charts.rps.draw(points);
    charts.latency.draw(points);
    charts.users.draw(points);
  }

  function rowKey(row) {
    return row[0] + "\u0000" + row[1];
  }

  function makeRow(row, isTotal) {
    const tr = document.createElement("tr");
    tr.dataset.key = rowKey(row);
    const cells = [];
    for (let c = 0; c < COLUMNS; c++) {
      const td = document.createElement("td");
      if (c === 1) td.className = "name";
      tr.appendChild(td);
      cells.push(td);
    }
    cells[0].textContent = row[0];
    cells[1].textContent = isTotal ? "Aggregated" : row[1];
    cells[1].title = row[1];
    return { tr, cells, texts: [], data: row };
  }

  function setCells(record, row) {
    record.data = row;
    for (let c = 2; c < COLUMNS; c++) {
      const text = FORMAT[c](row[c]);
      if (record.texts[c] !== text) {
        record.texts[c] = text;
        record.cells[c].textContent = text;
      }
    }
    const failing = row[3] > 0;
    if (record.failing !== failing) {
      record.failing = failing;
      record.cells[3].classList.toggle("failing", failing);
    }
  }

  function sortedRows(rows) {
    if (!view.sort) return rows;
    const { col, desc } = view.sort;
    const sorted = rows.slice();
    sorted.sort((a, b) => {
      const x = a[col];
      const y = b[col];
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return desc ? -order : order;
    });
    return sorted;
  }

  function updateTable(rows, total, moreRows) {
    view.last = { rows, total, more: moreRows };
    const body = $("stats-body");
    const seen = new Set();
    for (const row of rows) {
      const key = rowKey(row);
      seen.add(key);
      let record = view.rows.get(key);
      if (!record) {
        record = makeRow(row, false);
        view.rows.set(key, record);
      }
      setCells(record, row);
    }
    for (const [key, record] of view.rows) {
      if (!seen.has(key)) {
        record.tr.remove();
        view.rows.delete(key);
      }
    }
    const ordered = sortedRows(rows);
    const order = ordered.map(rowKey).join("\u0001");
    if (order !== view.order) {
      view.order = order;
      const fragment = document.createDocumentFragment();
      for (const row of ordered) fragment.appendChild(view.rows.get(rowKey(row)).tr);
      body.appendChild(fragment);
    }
    if (!view.total) {
      view.total = makeRow(total, true);
      $("stats-total").appendChild(view.total.tr);
    }
    setCells(view.total, total);
    const more = $("more-rows");
    more.hidden = !moreRows;
    if (moreRows) {
      more.textContent = moreRows + " more request names are not shown here; the requests CSV has them all.";
    }
  }

  function updateFailures(errors) {
    const text = JSON.stringify(errors);
    if (text === view.errorsText) return;
    view.errorsText = text;
    const body = $("failures-body");
    const fragment = document.createDocumentFragment();
    let total = 0;
    for (const [type, name, message, count] of errors) {
      total += count;
      const tr = document.createElement("tr");
      for (const value of [String(count), type, name, message]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.appendChild(td);
      }
      fragment.appendChild(tr);
    }
    body.replaceChildren(fragment);
    $("no-failures").hidden = errors.length > 0;
    const badge = $("failures-count");
    badge.hidden = errors.length === 0;
    badge.textContent = errors.length ? String(errors.length) : "";
  }

  // Threshold conditions: [metric, condition, value (null: no data), ok].
  function updateThresholds(results) {
    const text = JSON.stringify(results);
    if (text === view.thresholdsText) return;
    view.thresholdsText = text;
    const fragment = document.createDocumentFragment();
    for (const [metric, condition, value, ok] of results) {
      const tr = document.createElement("tr");
      tr.className = ok ? "threshold-ok" : "threshold-failed";
      const shown = value === null ? "no data" : String(Math.round(value * 1000) / 1000);
      for (const text of [metric, condition, shown, ok ? "pass" : "fail"]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      fragment.appendChild(tr);
    }
    $("thresholds-body").replaceChildren(fragment);
    $("thresholds-box").hidden = results.length === 0;
  }

  function updateWorkers(workers) {
    const text = JSON.stringify(workers);
    if (text === view.workersText) return;
    view.workersText = text;
    const fragment = document.createDocumentFragment();
    for (const w of workers) {
      const tr = document.createElement("tr");
      const values = [
        w.id, w.state, String(w.user_count), w.cpu_percent.toFixed(1),
        (w.memory_bytes / 1e6).toFixed(1), w.heartbeat_age_s.toFixed(1),
      ];
      values.forEach((value, i) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (i === 0) td.className = "name";
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    }
    $("workers-body").replaceChildren(fragment);
    $("no-workers").hidden = workers.length > 0;
    $("workers-count").textContent = String(workers.length);
  }

  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  // What the browser test reads: how many updates arrived and how long applying them took.
  const metrics = { updates: 0, applyMs: [] };
  window.ldDashboard = metrics;

  function applyUpdate(update, withPoints) {
    if (!update || update.seq === undefined) return;
    const started = performance.now();
    if (view.run !== undefined && update.run !== undefined && update.run !== view.run) newRun();
    view.run = update.run;
    setText("state", update.state.toUpperCase());
    $("state").dataset.state = update.state;
    view.targetUsers = update.target_users;
    const ramping = update.users !== update.target_users
      && (update.state === "spawning" || update.state === "running");
    setText("users", ramping ? update.users + " → " + update.target_users : String(update.users));
    setText("rps", formatNumber(update.rps));
    // Arrival-rate runs: achieved against target iterations per second, and what was dropped.
    const scheduled = update.target_rate > 0 || update.dropped_iterations > 0;
    $("fact-rate").hidden = !scheduled;
    $("fact-dropped").hidden = !scheduled;
    if (scheduled) {
      setText("rate", formatNumber(update.iteration_rate) + " / " + formatNumber(update.target_rate));
      setText("dropped", String(update.dropped_iterations));
    }
    setText("fail-ratio", Math.round(update.fail_ratio * 1000) / 10 + "%");
    if (update.generator && update.generator.saturated && !view.saturationShown) {
      view.saturationShown = true;
      showMessage("The load generator, not the target, may be limiting this run (CPU "
        + Math.round(update.generator.cpu_percent) + "%, start lag p99 "
        + update.generator.start_lag_p99_ms + " ms)", true);
    }
    updateTable(update.rows, update.total, update.more_rows);
    updateFailures(update.errors);
    if (Array.isArray(update.thresholds)) updateThresholds(update.thresholds);
    if (Array.isArray(update.workers)) updateWorkers(update.workers);
    if (withPoints) {
      for (const point of update.points) view.history.push(point);
    }
    drawCharts();
    if (update.last) ended();
    else showNewRun(update.new_run === true);
    metrics.updates += 1;
    metrics.applyMs.push(performance.now() - started);
    if (metrics.applyMs.length > 100) metrics.applyMs.shift();
  }

  function ended() {
    if (view.ended) return;
    view.ended = true;
    if (view.source) view.source.close();
    const banner = $("banner");
    banner.textContent = "The run has ended: these statistics are final and this page no longer updates.";
    banner.className = "banner ended";
    banner.hidden = false;
    for (const id of ["edit-button", "stop-button", "reset-button"]) $(id).disabled = true;
  }

  // A run that ended while the UI lingers: its figures stay, and a new run can start.
  function showNewRun(offered) {
    const button = $("new-run-button");
    if (button.hidden === !offered) return;
    button.hidden = !offered;
    for (const id of ["edit-button", "stop-button", "reset-button"]) $(id).disabled = offered;
    const banner = $("banner");
    if (offered) {
      banner.textContent = "The run has ended: these statistics are final. Download them, or start a new run with the same plan.";
      banner.className = "banner ended";
      banner.hidden = false;
    } else if (banner.classList.contains("ended")) {
      banner.hidden = true;
    }
  }

  // The UI now shows a new run: what was shown of the one before goes.
  function newRun() {
    view.history = new ChartHistory(null);
    view.rows.forEach((r) => r.tr.remove());
    view.rows.clear();
    view.order = "";
    view.saturationShown = false;
  }

  function showMessage(text, isError) {
    const box = $("message");
    box.textContent = text;
    box.className = isError ? "message error" : "message";
    box.hidden = false;
    clearTimeout(showMessage.timer);
    showMessage.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function connect() {
    const source = new EventSource("events");
    view.source = source;
    source.addEventListener("init", (event) => {
      const init = JSON.parse(event.data);
      $("banner").hidden = true;
      setText("host", init.settings.host || "(task URLs)");
      $("host").title = init.settings.host || "";
      $("workers-tab").hidden = !init.settings.distributed;
      view.history = new ChartHistory(init.history);
      applyUpdate(init.update, false);
    });
    source.addEventListener("update", (event) => applyUpdate(JSON.parse(event.data), true));
    source.addEventListener("error", () => {
      if (view.ended) return;
      const banner = $("banner");
      banner.className = "banner";
      banner.textContent = "Connection to the run lost; retrying…";
      banner.hidden = false;
    });
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: body ? { "Content-Type": "application/x-www-form-urlencoded" } : {},
      body: body ? new URLSearchParams(body).toString() : undefined,
    });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    const type = response.headers.get("Content-Type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  function selectTab(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    }
    for (const panel of document.querySelectorAll(".panel")) {
      panel.hidden = panel.id !== "tab-" + name;
    }
  }

  function wire() {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => selectTab(tab.dataset.tab));
    }
    for (const th of document.querySelectorAll("#stats th")) {
      th.addEventListener("click", () => {
        const col = Number(th.dataset.col);
        if (view.sort && view.sort.col === col) {
          view.sort = view.sort.desc ? null : { col, desc: true };
        } else {
          view.sort = { col, desc: false };
        }
        for (const other of document.querySelectorAll("#stats th")) {
          other.classList.remove("sorted-asc", "sorted-desc");
        }
        if (view.sort) th.classList.add(view.sort.desc ? "sorted-desc" : "sorted-asc");
        view.order = "";
        if (view.last) updateTable(view.last.rows, view.last.total, view.last.more);
      });
    }
    $("stop-button").addEventListener("click", async () => {
      $("stop-button").disabled = true;
      showMessage("Stopping: requests in flight finish first…", false);
      try {
        const answer = await post("stop");
        showMessage(answer.message || "Test stopped", false);
      } catch (error) {
        if (!view.ended) {
          $("stop-button").disabled = false;
          showMessage(String(error), true);
        }
      }
    });
    $("reset-button").addEventListener("click", async () => {
      try {
        await post("stats/reset");
        view.rows.forEach((r) => r.tr.remove());
        view.rows.clear();
        view.order = "";
        showMessage("Statistics reset", false);
      } catch (error) {
        showMessage(String(error), true);
      }
    });
    const dialog = $("edit-dialog");
    $("edit-button").addEventListener("click", () => {
      view.editing = "swarm";
      $("edit-title").textContent = "Change the load";
      $("edit-users").value = view.targetUsers;
      $("edit-rate").value = view.lastSpawnRate;
      dialog.showModal();
    });
    $("new-run-button").addEventListener("click", () => {
      view.editing = "new-run";
      $("edit-title").textContent = "New run (same plan)";
      $("edit-users").value = view.targetUsers || 1;
      $("edit-rate").value = view.lastSpawnRate;
      dialog.showModal();
    });
    $("edit-cancel").addEventListener("click", () => dialog.close());
    $("edit-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const users = $("edit-users").value;
      const rate = $("edit-rate").value;
      dialog.close();
      try {
        const answer = await post("swarm", { user_count: users, spawn_rate: rate });
        if (answer.success) {
          view.lastSpawnRate = rate;
          showMessage((view.editing === "new-run" ? "New run: heading for " : "Heading for ")
            + users + " users at " + rate + " per second", false);
        } else {
          showMessage(answer.message, true);
        }
      } catch (error) {
        showMessage(String(error), true);
      }
    });
  }

  wire();
  connect();
})();
