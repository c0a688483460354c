// Fills the dashboard pages from the JSON API and refreshes them while sweeps run.
"use strict";
const clipsweep = (() => {
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const api = async (path) => {
    const response = await fetch(path);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  };
  const text = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const pct = (x) => `${(100 * x).toFixed(0)}%`;
  const bar = (p) => {
    const share = p.runs_total ? p.done / p.runs_total : 0;
    return `<span class="bar mini"><span class="fill" style="display:block;width:${pct(share)}"></span></span>${p.done}/${p.runs_total}`;
  };
  // The API's times are UTC; some databases (SQLite) hand them back without an offset, which
  // `new Date` would read as local time.
  const parseTime = (iso) => new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(iso) ? iso : `${iso}Z`);
  const when = (iso) => {
    if (!iso) return "–";
    const t = parseTime(iso);
    return `<time datetime="${t.toISOString()}" title="${t.toISOString()}">${text(t.toLocaleString())}</time>`;
  };
  const duration = (seconds) => {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  };
  // Calls `load` now and again every `seconds` while it answers true. A failed load is shown in
  // #load-error and retried more slowly, so a restarting server does not freeze the page.
  const repeatWhile = (load, seconds) => {
    const shown = document.getElementById("load-error");
    const tick = async () => {
      let again = true;
      let delay = seconds;
      try {
        again = await load();
        shown.hidden = true;
      } catch (err) {
        shown.textContent = `Could not refresh (${err.message}); retrying.`;
        shown.hidden = false;
        delay = 5 * seconds;
      }
      if (again) setTimeout(tick, delay * 1000);
    };
    tick();
  };

  function sweepsPage() {
    const body = document.querySelector("#sweeps tbody");
    const more = document.getElementById("more");
    repeatWhile(async () => {
      const page = await api("/api/v1/sweeps?limit=100");
      body.innerHTML = page.items.length ? page.items.map((s) => `<tr data-sweep="${s.id}">
        <td class="num">${s.id}</td><td><a href="/sweeps/${s.id}">${text(s.name)}</a></td><td>${text(s.task)}</td>
        <td class="status-${text(s.status)}">${text(s.status)}</td><td class="progress">${bar(s.progress)}</td>
        <td class="num">${s.progress.by_outcome.diverged ?? 0}</td>
        <td>${when(s.created_at)}</td></tr>`).join("")
        : `<tr><td colspan="7" class="muted">No sweeps yet.</td></tr>`;
      more.hidden = page.total <= page.items.length;
      more.textContent = `Showing the newest ${page.items.length} of ${page.total} sweeps.`;
      return page.items.some((s) => !FINISHED.has(s.status));
    }, 2);
  }

  // One line on what the sweep trains, from its stored spec (HTML).
  const about = (sweep) => {
    const spec = sweep.spec || {};
    const params = Object.entries(spec.task?.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const seeds = Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds;
    const parts = [`${spec.task?.name ?? sweep.task}(${params})`];
    if (spec.optimizer) parts.push(`${spec.optimizer.name}, momentum ${spec.optimizer.momentum}`);
    if (seeds) parts.push(`${seeds} seeds per cell`);
    if (spec.budget) parts.push(`${spec.budget.max_steps} steps × batch ${spec.budget.batch_size}`);
    const html = parts.map(text);
    html.push(`created ${when(sweep.created_at)}`);
    if (sweep.started_at && sweep.finished_at) {
      html.push(`took ${duration((parseTime(sweep.finished_at) - parseTime(sweep.started_at)) / 1000)}`);
    }
    return html.map((part) => `<span class="part">${part}</span>`).join(" · ");
  };

  function sweepPage(id) {
    const body = document.querySelector("#cells tbody");
    repeatWhile(async () => {
      const [sweep, summary] = await Promise.all([api(`/api/v1/sweeps/${id}`), api(`/api/v1/sweeps/${id}/summary`)]);
      const p = sweep.progress;
      const counts = Object.entries(p.by_outcome).filter(([, n]) => n).map(([o, n]) => `${n} ${o}`).join(", ");
      document.getElementById("status").innerHTML =
        `<span class="status-${text(sweep.status)}">${text(sweep.status)}</span> · ${p.done} of ${p.runs_total} runs done${counts ? ` (${text(counts)})` : ""}`;
      document.getElementById("bar-fill").style.width = pct(p.runs_total ? p.done / p.runs_total : 0);
      document.getElementById("about").innerHTML = about(sweep);
      const error = document.getElementById("error");
      error.hidden = !sweep.error;
      error.textContent = sweep.error || "";
      body.innerHTML = summary.cells.map((c) => {
        const rate = c.divergence_rate;
        const shade = rate === null ? "" : rate >= 0.5 ? "rate-high" : rate > 0 ? "rate-mid" : "rate-low";
        const ci = c.divergence_ci95 ? ` [${pct(c.divergence_ci95[0])}–${pct(c.divergence_ci95[1])}]` : "";
        return `<tr data-cell="${c.cell_index}"><td class="num">${c.lr}</td><td>${text(c.clipping)}</td>
          <td class="num">${c.finished}/${c.runs}</td><td class="num">${c.diverged}</td>
          <td class="num ${shade}">${rate === null ? "–" : pct(rate) + ci}</td>
          <td class="num">${c.converged}</td><td class="num">${c.median_steps_to_target ?? "–"}</td></tr>`;
      }).join("");
      return !FINISHED.has(sweep.status);
    }, 2);
  }

  return { sweepsPage, sweepPage };
})();
