// The page: fills the selectors, streams both panels' generations (server-sent events read
// from fetch, so a refused request's JSON message can be shown inline), draws the chosen
// revision's charts with the page's own vega-embed. Text only ever goes in via textContent.
// One function scope: the vega bundle's minified globals ($, q, ...) must not clash with ours.
(() => {
  "use strict";

  const q = (sel, root = document) => root.querySelector(sel);
  const SETTINGS = [
    "temperature", "top_k", "top_p", "length", "seed", "n",
    "repetition_penalty", "no_repeat_ngram", "min_length",
  ];
  const ESCAPES = { n: "\n", t: "\t", "\\": "\\" };
  let running = [];

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function showMessage(text) {
    const box = q("#message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function fillSelect(select, items, value) {
    select.replaceChildren(...items.map(([v, label]) => {
      const opt = el("option", label);
      opt.value = v;
      return opt;
    }));
    if (value !== undefined) select.value = value;
  }

  function fillRevisions(data) {
    const revs = data.revisions.map((r) => [r.id, r.label]);
    const keep = (select) => (revs.some(([id]) => id === select.value) ? select.value : revs[0][0]);
    for (const sel of ["#revision", "#panel-a .rev", "#panel-b .rev"]) {
      fillSelect(q(sel), revs, keep(q(sel)));
    }
    const ws = data.revisions.find((r) => r.kind === "workspace");
    const listing = q("#listing");
    listing.textContent = ws && ws.problem ? `workspace: ${ws.problem}` : "";
    listing.hidden = !listing.textContent;
    const more = data.pending ? " (listing commits and experiments...)" : "";
    q("#status").textContent = `${revs.length} revisions${more}; at most ${data.limits.length} tokens, ${data.limits.n} samples`;
  }

  async function listRevisions() {
    const data = await (await fetch("/api/revisions")).json();
    fillRevisions(data);
    // The server lists in the background; until its first listing ends, ask again.
    if (data.pending) setTimeout(() => listRevisions().catch(() => {}), 1000);
    return data;
  }

  async function init() {
    const data = await listRevisions();
    const models = data.models.map((m) => [m.name, m.label]);
    fillSelect(q("#panel-a .model"), models, "lstm");
    fillSelect(q("#panel-b .model"), models, "gan");
    q("#revision").addEventListener("change", () => {
      // Choosing a revision to read also points both panels at it.
      q("#panel-a .rev").value = q("#revision").value;
      q("#panel-b .rev").value = q("#revision").value;
      loadRead();
    });
    q("#settings").addEventListener("submit", (ev) => { ev.preventDefault(); generate(); });
    loadRead();
  }

  // The stop strings: one a line (a line break could not be typed as one), so \n, \t and
  // \\ in a line stand for a line break, a tab and a backslash.
  function stopStrings() {
    return q("#stop").value.split("\n").filter((line) => line !== "")
      .map((line) => line.replace(/\\([nt\\])/g, (_, c) => ESCAPES[c]));
  }

  function query(panel) {
    const params = new URLSearchParams();
    params.set("prompt", q("#prompt").value);
    for (const key of SETTINGS) params.set(key, q("#" + key).value.trim());
    for (const stop of stopStrings()) params.append("stop", stop);
    params.set("rev", q(".rev", panel).value);
    params.set("model", q(".model", panel).value);
    return params;
  }

  async function generate() {
    showMessage("");
    for (const ctrl of running) ctrl.abort();
    running = [];
    const panels = [q("#panel-a"), q("#panel-b")];
    await Promise.all(panels.map((panel) => streamInto(panel)));
  }

  async function streamInto(panel) {
    const out = q(".out", panel);
    const meta = q(".meta", panel);
    out.replaceChildren();
    meta.textContent = "loading the model...";
    const ctrl = new AbortController();
    running.push(ctrl);
    let resp;
    try {
      resp = await fetch("/api/generate?" + query(panel), { signal: ctrl.signal });
    } catch (err) {
      if (err.name !== "AbortError") meta.textContent = "the server did not answer";
      return;
    }
    if (!resp.ok) {
      let message = `error ${resp.status}`;
      try { message = (await resp.json()).error || message; } catch (_) { /* not JSON */ }
      showMessage(message);
      meta.textContent = "";
      out.append(el("div", message, "error"));
      return;
    }
    const prompt = q("#prompt").value;
    let pres = [];
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const handle = (event, data) => {
      if (event === "start") {
        meta.textContent = `${data.revision}: sampling...`;
        pres = Array.from({ length: data.n }, () => {
          const pre = el("pre");
          pre.append(el("span", prompt, "prompt"), el("span", "", "text"));
          out.append(pre);
          return q(".text", pre);
        });
      } else if (event === "tokens") {
        data.texts.forEach((t, i) => {
          if (data.replace.includes(i)) pres[i].textContent = t;
          else pres[i].textContent += t;
        });
        meta.textContent = `sampling... ${data.step} tokens`;
      } else if (event === "done") {
        const rate = data.tokens_per_s ? `, ${data.tokens_per_s.toFixed(0)} tokens/s per sample` : "";
        meta.textContent = `done in ${data.seconds.toFixed(2)} s (first tokens after ${data.first_token_s.toFixed(2)} s${rate})`;
        panel.dataset.done = "1";
      } else if (event === "error") {
        meta.textContent = data.error;
      }
    };
    delete panel.dataset.done;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          handle(event, JSON.parse(data));
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") meta.textContent = "the stream broke off";
    }
  }

  let readSeq = 0;

  async function loadRead() {
    const rev = q("#revision").value;
    const seq = ++readSeq;
    const resp = await fetch("/api/read?" + new URLSearchParams({ rev }));
    const data = await resp.json();
    if (seq !== readSeq) return; // another revision was chosen meanwhile: its answer wins
    const box = q("#read-message");
    box.hidden = true;
    for (const id of ["#verdict", "#charts", "#metrics", "#samples", "#skipped"]) q(id).replaceChildren();
    if (!resp.ok) { box.textContent = data.error; box.hidden = false; return; }
    if (data.problem) { box.textContent = data.problem; box.hidden = false; }
    for (const p of data.problems) q("#skipped").append(el("li", `skipped ${p.file}: ${p.error}`));
    if (!data.verdict.length) q("#verdict").append(el("p", "no report at this revision"));
    for (const p of data.verdict) q("#verdict").append(el("p", p));
    for (const spec of data.charts) {
      const div = el("div", undefined, "chart");
      q("#charts").append(div);
      // renderer svg: the drawing is an <svg> inside the chart element.
      vegaEmbed(div, spec, { renderer: "svg", actions: false }).catch((err) => {
        div.textContent = `chart failed: ${err}`;
      });
    }
    if (!data.charts.length) q("#charts").append(el("p", "no plots at this revision"));
    for (const m of data.metrics) {
      const table = el("table");
      const head = el("tr");
      head.append(el("th", m.file), el("th", "value"));
      table.append(head);
      for (const [key, value] of m.rows) {
        const tr = el("tr");
        const shown = typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(4) : String(value);
        tr.append(el("td", key), el("td", shown, "num"));
        table.append(tr);
      }
      q("#metrics").append(table);
    }
    for (const s of data.samples) {
      q("#samples").append(el("h4", s.file));
      for (const t of s.texts) q("#samples").append(el("pre", t));
    }
    document.body.dataset.read = rev;
  }

  init().catch((err) => showMessage(`the page could not start: ${err}`));
})();
