// crossbus console: plain JavaScript over the admin API of the page's
// handler. Every API call sends the bearer token kept in session storage.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const status = $("#status");
  let token = sessionStorage.getItem("crossbus-token") || "";
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("token")) {
    token = frag.get("token");
    sessionStorage.setItem("crossbus-token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function say(msg, isError) {
    status.textContent = msg;
    status.className = isError ? "status error" : "status";
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch("api/" + path, { method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (res.status === 401) {
      showLogin();
      throw new Error("Sign in with the admin token.");
    }
    if (!res.ok) {
      let detail = res.statusText;
      try { const p = await res.json(); detail = p.detail || p.title || detail; } catch (e) { /* not a problem document */ }
      throw new Error(detail + " (HTTP " + res.status + ")");
    }
    if (opts.raw) return res;
    const type = res.headers.get("Content-Type") || "";
    return type.includes("json") ? res.json() : res.text();
  }

  function showLogin() {
    $("#login").hidden = false;
    $("#token").focus();
  }
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("#token").value;
    sessionStorage.setItem("crossbus-token", token);
    $("#login").hidden = true;
    start();
  });

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  const when = (t) => (t ? new Date(t).toLocaleString() : "");

  // Topology: the server draws the SVG; its text is escaped there.
  async function loadTopology() {
    const t = await api("topology");
    $("#service").textContent = t.service ? "— " + t.service : "";
    handlers = {};
    for (const r of t.routes) handlers[r.topic + "/" + r.subscription] = r.handler.split("/").pop();
    const svg = await api("topology?format=svg");
    const fig = $("#diagram");
    fig.innerHTML = svg;
    const cap = document.createElement("figcaption");
    cap.className = "visually-hidden";
    cap.textContent = t.routes.map((r) => r.topic + " to " + r.subscription + " (" + r.handler + ")").join("; ");
    fig.appendChild(cap);
  }
  let handlers = {};

  async function loadCounters() {
    const c = await api("counters");
    const body = $("#counters tbody");
    body.replaceChildren();
    if (!c.routes.length) {
      const tr = document.createElement("tr");
      cell(tr, "This service has no routes (or did not give the admin handler its router).").colSpan = 9;
      body.appendChild(tr);
    }
    for (const r of c.routes) {
      const tr = document.createElement("tr");
      tr.dataset.route = r.topic + "/" + r.subscription;
      cell(tr, r.topic);
      cell(tr, r.subscription);
      cell(tr, handlers[r.topic + "/" + r.subscription] || "");
      for (const k of ["handled", "failed", "retried", "deadLettered", "inFlight"]) cell(tr, String(r[k]), "num");
      cell(tr, r.lag === undefined || r.lag === null ? "—" : String(r.lag), "num");
      body.appendChild(tr);
    }
  }

  let sources = [];
  async function loadSources() {
    const s = await api("deadletters");
    sources = s.sources;
    const sel = $("#source");
    const keep = sel.value;
    sel.replaceChildren();
    for (const src of sources) {
      const o = document.createElement("option");
      o.value = src.topic + "/" + src.subscription;
      o.textContent = src.subscription + " (topic " + src.topic + ")" + (src.readable ? "" : " — not readable");
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
  }
  const current = () => sources.find((s) => s.topic + "/" + s.subscription === $("#source").value);
  const sourcePath = (s) => "deadletters/" + encodeURIComponent(s.topic) + "/" + encodeURIComponent(s.subscription);

  async function loadGroups() {
    const src = current();
    const body = $("#groups tbody");
    body.replaceChildren();
    $("#source-note").textContent = "";
    if (!src) {
      $("#source-note").textContent = "No dead-letter sources.";
      return;
    }
    if (!src.readable) {
      $("#source-note").textContent = src.note;
      return;
    }
    say("Reading dead letters of " + src.subscription + "…");
    const g = await api(sourcePath(src) + "/groups");
    if (!g.groups.length) {
      const tr = document.createElement("tr");
      cell(tr, "No dead letters.").colSpan = 4;
      body.appendChild(tr);
    }
    for (const grp of g.groups) {
      const tr = document.createElement("tr");
      tr.dataset.group = grp.id;
      const c = cell(tr, grp.cause, "cause");
      c.title = grp.example;
      cell(tr, String(grp.count), "num count");
      cell(tr, when(grp.lastFailure));
      const td = cell(tr, "");
      const rd = document.createElement("button");
      rd.type = "button";
      rd.textContent = "Redrive";
      rd.setAttribute("aria-label", "Redrive " + grp.count + " dead letters: " + grp.cause);
      rd.addEventListener("click", () => act("redrive", { group: grp.id }, grp.count + " dead letters caused by “" + grp.cause + "” go back to topic " + grp.topic + " (to subscription " + grp.subscription + ")."));
      const pg = document.createElement("button");
      pg.type = "button";
      pg.className = "danger";
      pg.textContent = "Purge";
      pg.setAttribute("aria-label", "Purge " + grp.count + " dead letters: " + grp.cause);
      pg.addEventListener("click", () => act("purge", { group: grp.id }, grp.count + " dead letters caused by “" + grp.cause + "” are deleted for good."));
      td.append(rd, " ", pg);
      body.appendChild(tr);
    }
    say("");
  }

  function confirmDialog(title, text, withRate) {
    const d = $("#confirm");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-rate-row").hidden = !withRate;
    $("#confirm-ok").textContent = title;
    return new Promise((resolve) => {
      d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
      d.returnValue = "cancel";
      d.showModal();
    });
  }

  // act runs a redrive or purge, following its progress lines.
  async function act(kind, selection, text) {
    const src = current();
    const isRedrive = kind === "redrive";
    if (!(await confirmDialog(isRedrive ? "Redrive" : "Purge", text, isRedrive))) return;
    const body = Object.assign({}, selection);
    if (isRedrive) body.rate = parseFloat($("#confirm-rate").value);
    $("#dl-progress").hidden = false;
    $("#dl-bar").value = 0;
    say((isRedrive ? "Redriving" : "Purging") + "…");
    try {
      const res = await api(sourcePath(src) + "/" + kind, { method: "POST", body, raw: true, headers: { Accept: "application/x-ndjson" } });
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "", last = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = JSON.parse(buf.slice(0, i));
          buf = buf.slice(i + 1);
          if (line.progress) {
            $("#dl-bar").max = line.progress.total;
            $("#dl-bar").value = line.progress.done;
            $("#dl-count").textContent = line.progress.done + " of " + line.progress.total;
          }
          last = line;
        }
      }
      if (last && last.error) throw new Error(last.error.detail);
      const done = last && last.result ? last.result.done : 0;
      await loadGroups();
      say((isRedrive ? "Redrove " : "Purged ") + done + " dead letters.");
    } catch (e) {
      await loadGroups().catch(() => {});
      say(e.message, true);
    }
  }
  $("#redrive-all").addEventListener("click", () => act("redrive", { all: true }, "Every dead letter of this route goes back to its topic."));
  $("#purge-all").addEventListener("click", () => act("purge", { all: true }, "Every dead letter of this route is deleted for good."));
  $("#source-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadGroups().catch((e) => say(e.message, true));
  });
  $("#source").addEventListener("change", () => loadGroups().catch((e) => say(e.message, true)));

  // Replay.
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  async function loadArchive() {
    let a;
    try {
      a = await api("archive");
    } catch (e) {
      $("#archive-info").textContent = e.message;
      $("#replay-form").hidden = true;
      return;
    }
    const sel = $("#r-topic");
    const keep = sel.value;
    sel.replaceChildren();
    const names = new Set(a.archived.concat(a.topics.map((t) => t.topic)));
    for (const n of names) {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = n;
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
    $("#archive-info").textContent = a.topics.map((t) => t.topic + ": " + t.events + " events since " + when(t.oldest)).join("; ") || "The archive is empty.";
    if (!$("#r-from").value) {
      $("#r-from").value = local(new Date(Date.now() - 3600e3));
      $("#r-to").value = local(new Date(Date.now() + 60e3));
    }
    await loadReplays();
  }
  async function loadReplays() {
    const r = await api("replays");
    const body = $("#replays tbody");
    body.replaceChildren();
    for (const st of r.replays) {
      const tr = document.createElement("tr");
      cell(tr, st.id);
      cell(tr, st.topic);
      cell(tr, (st.target || st.topic) + (st.subscription ? " (only " + st.subscription + ")" : ""));
      cell(tr, st.status + (st.error ? ": " + st.error : ""));
      cell(tr, st.published + " of " + st.total, "num");
      body.appendChild(tr);
    }
  }
  $("#replay-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const req = {
      topic: f.get("topic"),
      from: new Date(f.get("from")).toISOString(),
      to: new Date(f.get("to")).toISOString(),
      rate: parseFloat(f.get("rate")),
    };
    for (const k of ["pattern", "target", "subscription"]) if (f.get(k)) req[k] = f.get(k).trim();
    try {
      const st = await api("replays", { method: "POST", body: req });
      $("#replay-progress").hidden = false;
      $("#r-id").textContent = st.id;
      say("Replay " + st.id + " started.");
      follow(st.id);
    } catch (e) {
      say(e.message, true);
    }
  });
  function follow(id) {
    const t = setInterval(async () => {
      try {
        const st = await api("replays/" + encodeURIComponent(id));
        $("#r-bar").max = Math.max(st.total, 1);
        $("#r-bar").value = st.scanned;
        $("#r-count").textContent = st.published + " published, " + st.scanned + " of " + st.total + " read — " + st.status;
        if (st.status !== "running") {
          clearInterval(t);
          say("Replay " + id + ": " + st.status + (st.error ? " (" + st.error + ")" : "") + ".", st.status === "failed");
          loadReplays();
        }
      } catch (e) {
        clearInterval(t);
        say(e.message, true);
      }
    }, 500);
  }

  let timer = null;
  async function start() {
    try {
      await loadTopology();
      await loadCounters();
      await loadSources();
      await loadGroups();
      await loadArchive();
      say("");
    } catch (e) {
      say(e.message, true);
      return;
    }
    if (!timer) timer = setInterval(() => loadCounters().catch((e) => say(e.message, true)), 2000);
  }
  start();
})();
