// neuronbench neuron viewer: plain JS over the JSON embedded in #nb-data.
// No fetch and no CDN, so the page works from file://. Routes: #neuron=KEY[&sample=N].
"use strict";

(function () {
  var errorsEl = document.getElementById("errors");
  function reportError(msg) {
    errorsEl.appendChild(document.createTextNode(msg + "\n"));
  }
  window.addEventListener("error", function (e) {
    reportError("error: " + (e.message || e));
  });
  var consoleError = console.error;
  console.error = function () {
    reportError("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("unhandledrejection", function (e) {
    reportError("unhandled rejection: " + e.reason);
  });

  var DATA = JSON.parse(document.getElementById("nb-data").textContent);
  var runs = DATA.runs;
  var samples = DATA.samples;
  samples.forEach(function (s, i) { s.i = i; });
  var state = { sort: "score", dir: -1, run: "all", query: "", chosen: null };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(x, digits) {
    return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits === undefined ? 3 : digits);
  }
  // The row label names explainer · strategy · simulator: one explainer and strategy
  // scored by two simulators are two different rows.
  // With several sites (MLP neurons, SAE latents) a run is named with its site first.
  var manySites = runs.some(function (r) { return r.site !== runs[0].site; });
  function runName(r) {
    return (manySites ? r.site + " · " : "") + r.label + (r.control ? " (control)" : "");
  }
  function runLabel(s) { return runName(runs[s.run]); }
  function sortValue(s, key) {
    if (key === "run") return runLabel(s);
    return s[key];
  }
  function compare(a, b) {
    var x = sortValue(a, state.sort), y = sortValue(b, state.sort);
    var xm = x === null || x === undefined, ym = y === null || y === undefined;
    if (xm || ym) return xm === ym ? a.i - b.i : (xm ? 1 : -1);  // missing last, either way
    if (x < y) return -state.dir;
    if (x > y) return state.dir;
    return a.i - b.i;
  }

  function renderSummary() {
    var neurons = {};
    samples.forEach(function (s) { neurons[s.neuron] = true; });
    document.getElementById("summary").textContent =
      Object.keys(neurons).length + " neurons, " + samples.length + " explanations, " +
      runs.length + " runs, from " + DATA.log_dir;
    var link = document.getElementById("bundle-link");
    if (DATA.bundle) {
      link.appendChild(document.createTextNode("Full transcripts: "));
      link.appendChild(el("a", { href: DATA.bundle, id: "inspect-bundle" }, "inspect view bundle"));
      link.appendChild(document.createTextNode(
        " (blank from file://: serve this page's folder over HTTP, e.g. " +
        "python -m http.server -d FOLDER, and open http://localhost:8000/)"));
    } else {
      link.appendChild(document.createTextNode(
        "Full transcripts: inspect view --log-dir " + DATA.log_dir +
        " (or rebuild this page with neuronbench viewer " + DATA.log_dir + " --bundle)"));
    }
    var select = document.getElementById("run-filter");
    select.appendChild(el("option", { value: "all" }, "all runs"));
    runs.forEach(function (r, i) {
      select.appendChild(el("option", { value: String(i) }, runName(r)));
    });
    select.addEventListener("change", function () { state.run = select.value; renderList(); });
    var search = document.getElementById("search");
    search.addEventListener("input", function () { state.query = search.value.toLowerCase(); renderList(); });
    document.querySelectorAll("#neurons th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-sort");
        state.dir = state.sort === key ? -state.dir : (key === "score" ? -1 : 1);
        state.sort = key;
        renderList();
      });
    });
  }

  function renderList() {
    var tbody = document.querySelector("#neurons tbody");
    tbody.textContent = "";
    var shown = samples.filter(function (s) {
      if (state.run !== "all" && String(s.run) !== state.run) return false;
      if (!state.query) return true;
      return (s.neuron + " " + s.explanation).toLowerCase().indexOf(state.query) >= 0;
    }).sort(compare);
    shown.forEach(function (s) {
      var tr = el("tr", { "data-neuron": s.neuron, "data-sample": String(s.i) });
      tr.appendChild(el("td", {}, s.neuron));
      tr.appendChild(el("td", { "class": "num" }, s.layer));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.firing_rate, 4)));
      tr.appendChild(el("td", { "class": runs[s.run].control ? "control" : "" }, runLabel(s)));
      tr.appendChild(el("td", { "class": "num" }, s.epoch));
      tr.appendChild(el("td", { "class": "num status-" + s.status }, s.status === "ok" ? fmt(s.score) : s.status));
      tr.appendChild(el("td", {})).appendChild(el("div", { "class": "clamp", title: s.explanation }, s.explanation));
      tr.addEventListener("click", function () {
        location.hash = "neuron=" + encodeURIComponent(s.neuron) + "&sample=" + s.i;
      });
      tbody.appendChild(tr);
    });
    document.getElementById("count").textContent = shown.length + " shown";
    document.querySelectorAll("#neurons th[data-sort]").forEach(function (th) {
      th.classList.remove("asc", "desc");
      if (th.getAttribute("data-sort") === state.sort) th.classList.add(state.dir > 0 ? "asc" : "desc");
    });
    markSelected();
  }

  function markSelected() {
    document.querySelectorAll("#neurons tbody tr, #explanations tbody tr").forEach(function (tr) {
      tr.classList.toggle("selected", state.chosen !== null && tr.getAttribute("data-sample") === String(state.chosen));
    });
  }

  function parseRoute() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq > 0) params[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1));
    });
    var sample = params.sample !== undefined ? parseInt(params.sample, 10) : null;
    return { neuron: params.neuron || null, sample: isNaN(sample) ? null : sample };
  }

  var REAL_RGB = "0,170,60", SIM_RGB = "40,110,255";
  function shade(rgb, v, scale) {
    var alpha = (v === null || v === undefined || !(scale > 0)) ? 0 : Math.max(0, Math.min(1, v / scale));
    return "background: rgba(" + rgb + "," + alpha.toFixed(3) + ")";
  }
  // One token: its text shaded by the real activation over a bar shaded by the simulated
  // one, in one box, so the two readings stay aligned however the row wraps.
  function tokenBox(text, real, realScale, sim, title) {
    var box = el("span", { "class": "tok", title: title });
    box.appendChild(el("span", { "class": "real", style: shade(REAL_RGB, real, realScale) }, text));
    box.appendChild(el("span", { "class": "sim", style: shade(SIM_RGB, sim, 10) }));
    return box;
  }
  function tokenRow(tokens, acts, preds, realMax) {
    var row = el("div", { "class": "tokens" });
    tokens.forEach(function (tok, j) {
      var a = acts ? acts[j] : null, p = preds ? preds[j] : null;
      var title = JSON.stringify(tok) + "  real " + fmt(a, 2) + ", simulated " + fmt(p, 2);
      row.appendChild(tokenBox(tok.replace(/\n/g, "↵"), a, realMax, p, title));
    });
    return row;
  }

  function renderDetail() {
    var route = parseRoute();
    var detail = document.getElementById("detail");
    if (!route.neuron) return;
    var mine = samples.filter(function (s) { return s.neuron === route.neuron; });
    detail.textContent = "";
    if (!mine.length) {
      detail.appendChild(el("p", { "class": "status-failed" }, "No neuron " + route.neuron + " in these logs."));
      return;
    }
    var chosen = mine.filter(function (s) { return s.i === route.sample; })[0];
    if (!chosen) {
      chosen = mine.slice().sort(function (a, b) { return (b.score === null ? -9 : b.score) - (a.score === null ? -9 : a.score); })[0];
    }
    state.chosen = chosen.i;
    var n = mine[0];
    detail.appendChild(el("h2", { id: "detail-title" }, n.neuron));
    detail.appendChild(el("p", { id: "detail-site" }, "site " + (n.site || "mlp") + ", layer " + n.layer +
      ", index " + n.index + ", firing rate " +
      fmt(n.firing_rate, 4) + ", max activation " + fmt(n.max_activation, 3)));

    detail.appendChild(el("h3", {}, "Explanations"));
    var table = el("table", { id: "explanations" });
    var cols = table.appendChild(el("colgroup"));
    var head = el("tr");
    [["run", "c-run"], ["epoch", "c-epoch num"], ["score", "c-score num"], ["random only", "c-part num"],
     ["top only", "c-part num"]].forEach(function (h) {
      cols.appendChild(el("col", { "class": h[1].split(" ")[0] }));
      head.appendChild(el("th", { "class": h[1] }, h[0]));
    });
    table.appendChild(el("thead")).appendChild(head);
    // One tbody per explanation: a row of numbers, then the explanation across the full
    // width, so a long explanation does not squeeze the columns of a narrow pane.
    mine.forEach(function (s) {
      var body = table.appendChild(el("tbody", { "data-sample": String(s.i) }));
      var tr = body.appendChild(el("tr", { "class": "numbers", "data-sample": String(s.i) }));
      tr.appendChild(el("td", { "class": runs[s.run].control ? "control" : "" }, runLabel(s)));
      tr.appendChild(el("td", { "class": "num" }, s.epoch));
      tr.appendChild(el("td", { "class": "num status-" + s.status }, s.status === "ok" ? fmt(s.score) : s.status));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.random_only)));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.top_only)));
      var text = body.appendChild(el("tr", { "class": "text", "data-sample": String(s.i) }))
        .appendChild(el("td", { "class": "explanation", colspan: "5" }, s.explanation));
      if (s.status !== "ok") {
        text.appendChild(el("div", { "class": "reason status-" + s.status }, s.status + (s.reason ? ": " + s.reason : "")));
      }
      body.addEventListener("click", function () {
        location.hash = "neuron=" + encodeURIComponent(s.neuron) + "&sample=" + s.i;
      });
    });
    detail.appendChild(table);

    var recs = el("section", { id: "records" });
    recs.appendChild(el("h3", {}, "Records for: " + runs[chosen.run].label + ", epoch " + chosen.epoch));
    recs.appendChild(el("p", { "class": "explanation" }, "“" + chosen.explanation + "” — score " + fmt(chosen.score)));
    var legend = el("div", { "class": "legend" });
    legend.appendChild(tokenBox("token", 0.6, 1, 6, "example token"));
    legend.appendChild(el("span", {}, "Each token: text background = real activation (÷ max over " +
      "these records); bar below = simulated activation (0–10 scale)."));
    recs.appendChild(legend);
    if (!chosen.records.length) {
      recs.appendChild(el("p", { "class": "hint" }, "No records in the log for this explanation (status " + chosen.status + ")."));
    }
    var realMax = 0;
    chosen.records.forEach(function (r) {
      r.activations.forEach(function (a) { if (a !== null && a > realMax) realMax = a; });
    });
    chosen.records.forEach(function (r, k) {
      var box = el("div", { "class": "record", "data-record": String(k) });
      box.appendChild(el("div", { "class": "meta" }, r.group + " record, corpus position " + r.position));
      box.appendChild(tokenRow(r.tokens, r.activations, r.predictions, realMax));
      recs.appendChild(box);
    });
    detail.appendChild(recs);
    markSelected();
  }

  renderSummary();
  renderList();
  renderDetail();
  window.addEventListener("hashchange", renderDetail);
  document.body.setAttribute("data-ready", "1");
})();
