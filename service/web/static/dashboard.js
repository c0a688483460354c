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
  const repeatWhile = (load, seconds) => {
    const tick = async () => { if (await load()) setTimeout(tick, seconds * 1000); };
    tick();
  };

  function sweepsPage() {
    const body = document.querySelector("#sweeps tbody");
    repeatWhile(async () => {
      const page = await api("/api/v1/sweeps?limit=100");
      body.innerHTML = page.items.length ? page.items.map((s) => `<tr data-sweep="${s.id}">
        <td>${s.id}</td><td><a href="/sweeps/${s.id}">${text(s.name)}</a></td><td>${text(s.task)}</td>
        <td class="status-${s.status}">${s.status}</td><td>${bar(s.progress)}</td>
        <td class="num">${s.progress.by_outcome.diverged}</td>
        <td>${new Date(s.created_at).toLocaleString()}</td></tr>`).join("")
        : `<tr><td colspan="7" class="muted">No sweeps yet.</td></tr>`;
      return page.items.some((s) => !FINISHED.has(s.status));
    }, 2);
  }

  function sweepPage(id) {
    const body = document.querySelector("#cells tbody");
    repeatWhile(async () => {
      const [sweep, summary] = await Promise.all([api(`/api/v1/sweeps/${id}`), api(`/api/v1/sweeps/${id}/summary`)]);
      const p = sweep.progress;
      const counts = Object.entries(p.by_outcome).filter(([, n]) => n).map(([o, n]) => `${n} ${o}`).join(", ");
      document.getElementById("status").innerHTML =
        `<span class="status-${sweep.status}">${sweep.status}</span> · ${p.done} of ${p.runs_total} runs done${counts ? ` (${counts})` : ""}`;
      document.getElementById("bar-fill").style.width = pct(p.runs_total ? p.done / p.runs_total : 0);
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
