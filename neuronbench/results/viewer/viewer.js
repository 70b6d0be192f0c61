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
  function runLabel(s) {
    var r = runs[s.run];
    return r.explainer + " · " + r.strategy + (r.control ? " (control)" : "");
  }
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
        " (serve this folder over HTTP, e.g. python -m http.server, to open it)"));
    } else {
      link.appendChild(document.createTextNode(
        "Full transcripts: inspect view --log-dir " + DATA.log_dir +
        " (or rebuild this page with neuronbench viewer " + DATA.log_dir + " --bundle)"));
    }
    var select = document.getElementById("run-filter");
    select.appendChild(el("option", { value: "all" }, "all runs"));
    runs.forEach(function (r, i) {
      select.appendChild(el("option", { value: String(i) }, r.label + (r.control ? " (control)" : "")));
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
      tr.appendChild(el("td", {}, s.explanation));
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

  function tokenRow(label, tokens, values, scale, rgb, unit) {
    var row = el("div", { "class": "tokens " + label });
    row.appendChild(el("span", { "class": "which" }, label));
    var text = el("span", { "class": "text" });
    tokens.forEach(function (tok, j) {
      var v = values ? values[j] : null;
      var alpha = (v === null || v === undefined || !(scale > 0)) ? 0 : Math.max(0, Math.min(1, v / scale));
      var span = el("span", {
        "class": "tok",
        title: JSON.stringify(tok) + " " + unit + "=" + (v === null || v === undefined ? "–" : fmt(v, 2)),
        style: "background: rgba(" + rgb + "," + alpha.toFixed(3) + ")"
      }, tok.replace(/\n/g, "↵"));
      text.appendChild(span);
    });
    row.appendChild(text);
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
    detail.appendChild(el("p", {}, "layer " + n.layer + ", index " + n.index + ", firing rate " +
      fmt(n.firing_rate, 4) + ", max activation " + fmt(n.max_activation, 3)));

    detail.appendChild(el("h3", {}, "Explanations"));
    var table = el("table", { id: "explanations" });
    var head = el("tr");
    ["run", "epoch", "explanation", "score", "random-only", "top-only", "status"].forEach(function (h) {
      head.appendChild(el("th", {}, h));
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    mine.forEach(function (s) {
      var tr = el("tr", { "data-sample": String(s.i) });
      tr.appendChild(el("td", { "class": runs[s.run].control ? "control" : "" }, runs[s.run].label));
      tr.appendChild(el("td", { "class": "num" }, s.epoch));
      tr.appendChild(el("td", {}, s.explanation));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.score)));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.random_only)));
      tr.appendChild(el("td", { "class": "num" }, fmt(s.top_only)));
      tr.appendChild(el("td", { "class": "status-" + s.status }, s.status + (s.reason ? ": " + s.reason : "")));
      tr.addEventListener("click", function () {
        location.hash = "neuron=" + encodeURIComponent(s.neuron) + "&sample=" + s.i;
      });
      body.appendChild(tr);
    });
    detail.appendChild(table);

    var recs = el("section", { id: "records" });
    recs.appendChild(el("h3", {}, "Records for: " + runs[chosen.run].label + ", epoch " + chosen.epoch));
    recs.appendChild(el("p", { "class": "explanation" }, "“" + chosen.explanation + "” — score " + fmt(chosen.score)));
    var legend = el("p", { "class": "legend" });
    legend.appendChild(el("span", { style: "background: rgba(0,170,60,0.6)" }, "real activation (÷ max over these records)"));
    legend.appendChild(el("span", { style: "background: rgba(40,110,255,0.6)" }, "simulated (0–10 scale)"));
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
      box.appendChild(tokenRow("real", r.tokens, r.activations, realMax, "0,170,60", "act"));
      box.appendChild(tokenRow("simulated", r.tokens, r.predictions, 10, "40,110,255", "sim"));
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
