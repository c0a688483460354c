// Fills the dashboard pages from the JSON API and refreshes them while sweeps run. Charts are
// drawn with plotly.js, served by the app itself (/vendor/plotly.min.js), never from a CDN.
"use strict";
const clipsweep = (() => {
  const signIn = () => location.assign(`/sign-in?${new URLSearchParams({ next: location.pathname + location.search })}`);
  const api = async (path) => {
    const response = await fetch(path);
    if (response.status === 401) signIn();  // the sign-in expired or was revoked meanwhile
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  };
  const text = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const $ = (x) => document.getElementById(x);
  // How numbers are written, by the rules of service/analysis/numbers.py (the CLI's and the API's
  // texts); a browser test holds the two together. Halves round up, there as here.
  const pct = (x) => `${Math.round(100 * x)}%`;
  const count = (n) => Math.round(n).toLocaleString("en-US");
  const steps = (x) => (Number.isInteger(x) ? count(x)
    : x.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }));
  const rate = (x) => (x >= 10 ? count(x) : (Math.round(x * 10) / 10).toFixed(1));
  const duration = (seconds) => {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 90) return `${minutes} min`;
    const [h, m] = [Math.floor(minutes / 60), minutes % 60];
    return m ? `${h} h ${m} min` : `${h} h`;
  };
  // The API writes non-finite numbers as the strings "NaN", "Infinity", "-Infinity".
  const num = (v) => (typeof v === "string" ? Number(v) : v);
  const fmt = (v) => {
    const x = num(v);
    if (x === null || x === undefined) return "–";
    if (Number.isNaN(x)) return "NaN";
    if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
    return Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : String(Number(x.toPrecision(3)));
  };
  // Runs that trained to an outcome. Cancelled and failed runs count as done but trained nothing,
  // so they fill no bar: a cancelled sweep reads "40/64, 24 cancelled", never a full 64/64.
  const TRAINED = ["converged", "diverged", "unconverged"];
  const trained = (p) => TRAINED.reduce((n, o) => n + (p.by_outcome[o] ?? 0), 0);
  const trainedShare = (p) => (p.runs_total ? trained(p) / p.runs_total : 0);
  // While a sweep trains, its bar fills by steps: runs mostly end only at the end of their budget.
  const filled = (sweep) => {
    const p = sweep.progress;
    return sweep.status === "running" && p.steps_total ? p.steps_done / p.steps_total : trainedShare(p);
  };
  const bar = (sweep) => {
    const p = sweep.progress;
    const lost = ["cancelled", "failed"].filter((o) => p.by_outcome[o]).map((o) => `, ${p.by_outcome[o]} ${o}`).join("");
    return `<span class="bar mini"><span class="fill" style="display:block;width:${pct(filled(sweep))}"></span></span>${
      trained(p)}/${p.runs_total}${lost}`;
  };
  // "1,200 of 9,600 steps (13%), 850 steps/s, about 10 s left": a running sweep's progress line.
  const pace = (p) => `${count(p.steps_done)} of ${count(p.steps_total)} steps (${pct(p.steps_done / p.steps_total)})`
    + (p.steps_per_second ? `, ${rate(p.steps_per_second)} steps/s` : "")
    + (p.eta_seconds !== null ? `, about ${duration(p.eta_seconds)} left` : "");
  // The API's times are UTC; some databases (SQLite) hand them back without an offset, which
  // `new Date` would read as local time.
  const parseTime = (iso) => new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(iso) ? iso : `${iso}Z`);
  const when = (iso) => {
    if (!iso) return "–";
    const t = parseTime(iso);
    return `<time datetime="${t.toISOString()}" title="${t.toISOString()}">${text(t.toLocaleString())}</time>`;
  };
  const took = (sweep) => {
    if (!sweep.started_at) return "–";
    const end = sweep.finished_at ? parseTime(sweep.finished_at) : new Date();
    return duration((end - parseTime(sweep.started_at)) / 1000) + (sweep.finished_at ? "" : " so far");
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

  // ---- charts ------------------------------------------------------------------------------
  const ARM_COLORS = ["#0969da", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#953800", "#57606a"];
  const NONE_COLOR = "#d1242f";
  const DIVERGED = "#d1242f";
  const armColor = (arms, label) => (label === "none" ? NONE_COLOR
    : ARM_COLORS[arms.filter((a) => a !== "none").indexOf(label) % ARM_COLORS.length]);
  const alpha = (hex, a) => `rgba(${[1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(",")},${a})`;
  // Every chart's config. Plotly's toolbar (modebar) shows only while the pointer is over the chart,
  // in the top-right corner of the chart's box: the top margin (t: 32) keeps that corner a band of
  // its own above the plot area, so it never covers a colorbar title, a legend or a mark.
  const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: "hover" };
  const layout = (extra) => ({
    margin: { l: 64, r: 16, t: 32, b: 48 }, font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "closest",
    legend: { orientation: "h", y: -0.22 }, ...extra,
  });
  const draw = (id, traces, extra) => Plotly.react(id, traces, layout(extra), PLOT_CONFIG);
  // plotly.js (4.8 MB) loads deferred, so the page's API requests run while the browser parses it;
  // drawing waits for it.
  let plotly = null;
  const plotlyLoaded = () => {
    plotly ??= window.Plotly ? Promise.resolve() : new Promise((resolve, reject) => {
      const script = document.getElementById("plotly-js");
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("could not load the chart library; reload the page")));
    });
    return plotly;
  };
  const unique = (xs) => [...new Set(xs)];
  const lrAxis = (lrs) => ({ title: { text: "learning rate" }, tickvals: lrs, ticktext: lrs.map(String),
    type: lrs.length > 1 && Math.max(...lrs) / Math.min(...lrs) >= 10 ? "log" : "linear" });
  // A series on a log axis: non-finite and non-positive values are gaps.
  const positive = (ys) => ys.map((y) => { const x = num(y); return Number.isFinite(x) && x > 0 ? x : null; });

  // While a sweep trains, a cell the API marks `too_early` shows its counts "so far", uncoloured:
  // 2 of 2 diverged is not a 100% to paint red (the headline waits by the same rule).
  function drawHeatmap(cells, running) {
    const lrs = unique(cells.map((c) => c.lr)).sort((a, b) => a - b);
    const arms = unique(cells.map((c) => c.clipping));
    const at = (lr, arm) => cells.find((c) => c.lr === lr && c.clipping === arm);
    const grid = (f) => lrs.map((lr) => arms.map((arm) => f(at(lr, arm))));
    const early = (c) => c.too_early;
    draw("heatmap", [{
      type: "heatmap", x: arms, y: lrs.map(String), zmin: 0, zmax: 1, xgap: 2, ygap: 2,
      z: grid((c) => (c && c.divergence_rate !== null && !early(c) ? c.divergence_rate : null)),
      text: grid((c) => (!c || c.divergence_rate === null ? "–"
        : early(c) ? `so far ${c.diverged}/${c.finished}<br>of ${c.runs}`
        : `${pct(c.divergence_rate)}<br>${c.diverged}/${c.finished}` + (running && c.finished < c.runs ? " so far" : ""))),
      customdata: grid((c) => (c && c.divergence_ci95
        ? `${c.diverged} of ${c.finished} diverged (${c.runs} runs): ${pct(c.divergence_rate)} [${pct(c.divergence_ci95[0])}–${pct(c.divergence_ci95[1])}]`
        : "no finished runs yet")),
      texttemplate: "%{text}", hovertemplate: "lr %{y} · %{x}<br>%{customdata}<extra></extra>",
      colorscale: [[0, "#e3f5e6"], [0.5, "#fff3d6"], [1, "#f5b5b5"]],
      colorbar: { title: { text: "diverged" }, tickformat: ".0%", thickness: 12 },
    }], { xaxis: { type: "category", title: { text: "clipping" } },
      yaxis: { type: "category", title: { text: "learning rate" } } });
  }

  function drawFrontier(summary) {
    const cells = summary.cells.filter((c) => c.divergence_rate !== null);
    const arms = unique(summary.cells.map((c) => c.clipping));
    const probeOrder = new Map((summary.search?.arms ?? []).map((a) => [a.clipping,
      new Map(a.probes.map((p, i) => [p.cell_index, i + 1]))]));
    const leftBehind = new Set((summary.search?.arms ?? []).flatMap((a) => a.probes.filter((p) => p.left_behind)
      .map((p) => p.cell_index)));
    const traces = [];
    for (const arm of arms) {
      const own = cells.filter((c) => c.clipping === arm).sort((a, b) => a.lr - b.lr);
      const color = armColor(arms, arm);
      traces.push({ // the Wilson band: up along the upper bounds, back along the lower ones
        x: [...own.map((c) => c.lr), ...own.map((c) => c.lr).reverse()],
        y: [...own.map((c) => c.divergence_ci95[1]), ...own.map((c) => c.divergence_ci95[0]).reverse()],
        fill: "toself", fillcolor: alpha(color, 0.15), line: { width: 0 }, hoverinfo: "skip",
        showlegend: false, legendgroup: arm, mode: "lines",
      });
      // A searched sweep numbers each arm's probes in the order they ran: the path of the bisection.
      const order = probeOrder.get(arm) ?? new Map();
      traces.push({
        x: own.map((c) => c.lr), y: own.map((c) => c.divergence_rate), name: arm, legendgroup: arm,
        mode: order.size ? "lines+markers+text" : "lines+markers", line: { color, width: 2 }, marker: { color, size: 7 },
        text: own.map((c) => (order.has(c.cell_index) ? String(order.get(c.cell_index)) : "")),
        textposition: "top center", textfont: { color, size: 11 },
        customdata: own.map((c) => `${c.diverged}/${c.finished} [${pct(c.divergence_ci95[0])}–${pct(c.divergence_ci95[1])}]`
          + (c.verdict ? ` ${c.verdict}` : "") + (c.out_of_reach ? " (out of reach by max seeds)" : "")
          + (leftBehind.has(c.cell_index) ? " (started ahead on a bet lost: left behind)" : "")
          + (order.has(c.cell_index) ? `, probe ${order.get(c.cell_index)}` : "")),
        hovertemplate: `${text(arm)}<br>lr %{x}: %{y:.0%} %{customdata}<extra></extra>`,
      });
    }
    draw("frontier", traces, {
      xaxis: lrAxis(unique(summary.cells.map((c) => c.lr))),
      yaxis: { title: { text: "divergence rate" }, tickformat: ".0%", range: [-0.02, 1.02] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: summary.tolerance, y1: summary.tolerance,
        line: { color: "#57606a", dash: "dot", width: 1 } }],
    });
    const reasons = unique(summary.frontier.filter((f) => f.stable_lr.value === null).map((f) => f.stable_lr.reason));
    document.getElementById("frontier-note").innerHTML = `Highest stable learning rate (upper bound under ${pct(summary.tolerance)}, dotted): ` +
      // An arm without one says "no stable lr", never "none": an arm is named "none" too.
      summary.frontier.map((f) => `<span class="part"><b>${text(f.clipping)}</b>: ${f.stable_lr.value !== null
        ? fmt(f.stable_lr.value) : `<span class="missing" title="${text(f.stable_lr.reason)}">no stable lr</span>`}</span>`)
        .join(" · ") + reasons.map((r) => `<br>${text(r)}`).join("") + searchNote(summary.search);
  }

  // What a search cost against the grid, and the points that break the order (HTML).
  const searchNote = (search) => {
    if (!search) return "";
    const breaks = search.arms.filter((a) => a.breaks.length)
      .map((a) => `<br><b>${text(a.clipping)}</b> breaks "divergence grows with the learning rate" at ${a.breaks.map(fmt).join(", ")}`);
    return `<br>Searched (numbers: the order of the probes): ${count(search.runs)} runs; a grid of the same `
      + `${search.grid.length} points with the ${count(search.grid_runs / search.grid.length / search.arms.length)} seeds `
      + `per cell a fixed grid needs at ${pct(search.tolerance)} would take ${count(search.grid_runs)}`
      + ` (${rate(search.grid_runs / search.runs)}×). Each verdict is wrong with probability at most ${pct(search.alpha)}.`
      + breaks.join("");
  };

  // Wilson's 95% interval of d in n, as service/analysis/statistics.py computes it.
  const wilson = (d, n) => {
    const z = 1.959963984540054;
    const p = d / n;
    const den = 1 + (z * z) / n;
    const centre = (p + (z * z) / (2 * n)) / den;
    const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
    return [Math.max(0, centre - half), Math.min(1, centre + half)];
  };

  // An adaptive sweep's cell: the rate and its interval after each seed, in seed order (the order
  // the rounds added them), so the interval narrows round by round toward the verdict.
  function drawNarrowing(cell, chart, tolerance) {
    const figure = document.getElementById("narrowing-figure");
    figure.hidden = !cell || !cell.verdict;
    if (figure.hidden) return;
    document.getElementById("narrowing-verdict").textContent = cell.verdict;
    const trained = chart.runs.filter((r) => ["diverged", "converged", "unconverged"].includes(r.outcome))
      .sort((a, b) => a.seed - b.seed);
    let diverged = 0;
    const n = [], rate = [], low = [], high = [];
    trained.forEach((r, i) => {
      diverged += r.outcome === "diverged" ? 1 : 0;
      const [lo, hi] = wilson(diverged, i + 1);
      n.push(i + 1); rate.push(diverged / (i + 1)); low.push(lo); high.push(hi);
    });
    draw("narrowing", [
      { x: [...n, ...[...n].reverse()], y: [...high, ...[...low].reverse()], fill: "toself",
        fillcolor: alpha(ARM_COLORS[0], 0.15), line: { width: 0 }, hoverinfo: "skip", showlegend: false, mode: "lines" },
      { x: n, y: rate, mode: "lines", line: { color: ARM_COLORS[0], width: 2 }, name: "rate so far",
        hovertemplate: "after %{x} seeds: %{y:.1%}<extra></extra>" },
    ], {
      xaxis: { title: { text: "seeds trained" } },
      yaxis: { title: { text: "divergence rate" }, tickformat: ".0%", range: [-0.02, 1.02] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: tolerance, y1: tolerance,
        line: { color: "#57606a", dash: "dot", width: 1 } }],
      showlegend: false,
    });
  }

  function drawConvergence(summary, lr, maxSteps) {
    const arms = unique(summary.cells.map((c) => c.clipping));
    const traces = summary.cells.filter((c) => c.lr === lr).map((c) => {
      const steps = c.converged_by_step.map(([s]) => s);
      const share = c.converged_by_step.map(([, f]) => f);
      const last = share.length ? share[share.length - 1] : 0;
      return {
        x: [0, ...steps, maxSteps], y: [0, ...share, last], name: `${c.clipping} (${c.converged}/${c.finished})`,
        mode: "lines", line: { shape: "hv", color: armColor(arms, c.clipping), width: 2 },
        hovertemplate: `${text(c.clipping)}<br>by step %{x}: %{y:.0%}<extra></extra>`,
      };
    });
    draw("convergence", traces, {
      xaxis: { title: { text: "step" }, range: [0, maxSteps] },
      yaxis: { title: { text: "fraction converged" }, tickformat: ".0%", range: [0, 1.02] },
    });
  }

  // The step axis of a chart of runs. Seeds that diverge early sit in the first few percent of a
  // linear axis (steps 2–8 of a 300-step budget are ~15 px of it), their × marks crushed against the
  // axis and onto each other. So when a seed diverged within the first tenth of the steps shown,
  // the axis is logarithmic: each decade of steps (1–10, 10–100, 100–1000) gets the same width,
  // steps 2–8 then span a fifth of the chart, a fifth in from the axis, and the long runs still
  // show whole. It is drawn at step + 1, so that step 0 (the initial loss, every run's first point)
  // keeps its place at the left edge; the ticks and the hover say the step itself. Bigger marks
  // would not do: at steps 2, 3 and 5 they would still cover each other and the start of every curve.
  const stepAxis = (runs) => {
    const last = runs.reduce((m, r) => Math.max(m, r.steps.length ? r.steps[r.steps.length - 1] : 0), 1);  // steps ascend
    const early = runs.some((r) => r.outcome === "diverged" && r.diverged_at_step < last / 10);
    // (a run of a few steps: whole steps only, no tick at step 0.5)
    if (!early) return { at: (s) => s, xaxis: { title: { text: "step" }, ...(last < 10 ? { dtick: 1 } : {}) } };
    const ticks = [0];
    for (let decade = 1; decade <= last; decade *= 10) ticks.push(...[1, 2, 5].map((m) => m * decade).filter((s) => s <= last));
    return { at: (s) => s + 1, xaxis: { title: { text: "step (log scale)" }, type: "log",
      tickmode: "array", tickvals: ticks.map((s) => s + 1), ticktext: ticks.map(String) } };
  };

  // Past this many diverged seeds a chart leaves out the × marks: hundreds of them cover each other
  // and the curves' red ends, and each is an SVG node of its own, which cost a chart of 2,500
  // diverged seeds more to draw than its curves. Each red curve still ends at its divergence step,
  // and the per-seed table gives every seed's trigger and step.
  const MAX_MARKS = 500;
  const marked = (chart) => chart.curves.filter((r) => r.outcome === "diverged").length <= MAX_MARKS;

  // Loss or gradient-norm curves of a cell's seeds (chart.curves: every diverged seed and a sample
  // of the others, from …/chart; or one run's); diverged seeds in red, an x at the divergence step.
  // Under them, when the chart has one, the band of all its seeds: p10 to p90 shaded, p50 a line.
  // A series with a single finite point is drawn as a marker, not an invisible line.
  function drawSeeds(id, chart, key, threshold) {
    const { at, xaxis } = stepAxis(chart.curves);
    const bands = [];
    const band = chart[key];
    if (band && band.steps.length) {
      const x = band.steps.map(at);
      bands.push(
        { x, y: positive(band.p10), mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
        { x, y: positive(band.p90), mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(87,96,106,0.2)",
          hoverinfo: "skip", showlegend: false },
        { x, y: positive(band.p50), mode: "lines", line: { width: 2, color: "#57606a" }, name: "median", showlegend: false,
          customdata: band.steps.map((step, i) => [step, fmt(band.p10[i]), fmt(band.p90[i]), band.seeds[i]]),
          hovertemplate: "step %{customdata[0]}: median %{y:.3g}, p10 %{customdata[1]}, p90 %{customdata[2]}"
            + " over %{customdata[3]} seeds<extra></extra>" });
    }
    // One trace per kind of curve, its seeds apart by a gap (null), not one per seed: plotly's
    // cost grows with traces, and a cell of thousands of seeds has thousands of diverged curves.
    // A curve with a single finite point goes in a trace of markers (a line of one is invisible).
    const kinds = new Map();
    for (const r of chart.curves) {
      const y = positive(r[key]);
      const kind = r.outcome === "diverged" ? "diverged" : r.outcome === "converged" ? "converged" : "other";
      const mode = y.filter((v) => v !== null).length > 1 ? "lines" : "markers";
      const trace = kinds.get(`${kind} ${mode}`) ?? kinds.set(`${kind} ${mode}`, {
        x: [], y: [], customdata: [], name: `${kind} seeds`, showlegend: false, mode,
        line: { width: 1, color: kind === "diverged" ? DIVERGED : kind === "converged" ? "#1a7f37" : "#0969da" },
        marker: { color: kind === "diverged" ? DIVERGED : kind === "converged" ? "#1a7f37" : "#0969da" },
        opacity: kind === "diverged" ? 0.9 : 0.55,
        hovertemplate: "seed %{customdata[0]} (%{customdata[2]})<br>step %{customdata[1]}: %{y:.3g}<extra></extra>",
      }).get(`${kind} ${mode}`);
      if (trace.x.length) trace.x.push(null), trace.y.push(null), trace.customdata.push(null);
      const said = text(r.outcome ?? "training");
      r.steps.forEach((step, i) => {
        trace.x.push(at(step));
        trace.y.push(y[i]);
        trace.customdata.push([r.seed, step, said]);
      });
    }
    const traces = [...kinds.values()];
    // The value at the divergence step: finite, non-finite (NaN or infinite: marked at the top of
    // the chart), or never computed (a norm after the loss exploded: no mark on the norm chart).
    const last = (r) => r[key][r[key].length - 1];
    const diverged = chart.curves.filter((r) => r.outcome === "diverged" && last(r) !== null);
    if (diverged.length && marked(chart)) {
      const top = traces.reduce((m, t) => t.y.reduce((a, y) => (y !== null && y > a ? y : a), m), 1e-12);
      traces.push({
        x: diverged.map((r) => at(r.diverged_at_step)),
        y: diverged.map((r) => positive([last(r)])[0] ?? top),
        name: "divergence step", mode: "markers", showlegend: false, cliponaxis: false,
        // a white outline keeps marks that touch (seeds diverging at neighbouring steps) apart
        marker: { symbol: "x", size: 11, color: DIVERGED, line: { color: "#fff", width: 1 } },
        customdata: diverged.map((r) => `${text(`seed ${r.seed}: ${r.trigger}, ${key === "loss" ? "loss" : "norm"} ${
          fmt(last(r))}`)}<br>diverged at step ${Number(r.diverged_at_step)}`),
        hovertemplate: "%{customdata}<extra></extra>",
      });
    }
    const shapes = threshold === null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: threshold, y1: threshold,
      line: { color: "#1f2328", dash: "dash", width: 1.5 } }];
    draw(id, [...bands, ...traces], { xaxis,
      yaxis: { title: { text: key === "loss" ? "loss" : "pre-clip norm" }, type: "log", exponentformat: "power" },
      shapes });
  }

  // The norm charts show the global L2 pre-clip norm: only L2 norm clipping's threshold is on that scale.
  const clipThreshold = (method, params) => (method === "norm" && String(params.norm_type) === "2" ? params.max_norm : null);

  // "running", "cancelling", or "queued (waiting for resources: …)": what the sweep is doing now.
  const doing = (s) => text(s.status === "running" && s.cancel_requested_at ? "cancelling" : s.status) +
    (s.status_detail && !s.finished ? ` <span class="muted">(${text(s.status_detail)})</span>` : "");

  // ---- pages -------------------------------------------------------------------------------
  function sweepsPage() {
    const body = document.querySelector("#sweeps tbody");
    const more = document.getElementById("more");
    const filter = document.getElementById("status-filter");
    filter.value = new URLSearchParams(location.search).get("status") ?? "";
    filter.addEventListener("change", () => {
      history.replaceState(null, "", filter.value ? `?status=${filter.value}` : location.pathname);
      load();
    });
    const load = async () => {
      const status = filter.value ? `&status=${encodeURIComponent(filter.value)}` : "";
      const page = await api(`/api/v1/sweeps?limit=100${status}`);
      body.innerHTML = page.items.length ? page.items.map((s) => `<tr data-sweep="${s.id}">
        <td class="num">${s.id}</td><td><a href="/sweeps/${s.id}">${text(s.name)}</a></td><td>${text(s.task)}</td>
        <td class="status-${text(s.status)}">${doing(s)}</td><td class="progress">${bar(s)}</td>
        <td class="num">${s.progress.by_outcome.diverged ?? 0}</td>
        <td>${when(s.created_at)}</td><td class="num">${took(s)}</td></tr>`).join("")
        : `<tr><td colspan="8" class="muted">No ${filter.value ? `${text(filter.value)} ` : ""}sweeps.</td></tr>`;
      more.hidden = page.total <= page.items.length;
      more.textContent = `Showing the newest ${page.items.length} of ${page.total} sweeps.`;
      document.documentElement.dataset.rendered = "1";  // the list has drawn once
      return page.items.some((s) => !s.finished);
    };
    repeatWhile(load, 2);
  }

  // One line on what the sweep trains, from its stored spec (HTML).
  const about = (sweep) => {
    const spec = sweep.spec || {};
    const params = Object.entries(spec.task?.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const adaptive = spec.seeds?.adaptive;
    const seeds = adaptive ? `${adaptive.min}–${adaptive.max} adaptive` : Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds;
    const parts = [`${spec.task?.name ?? sweep.task}(${params})`];
    const opt = spec.optimizer;
    if (opt) {
      const knobs = opt.name === "sgd" ? [`momentum ${opt.momentum}`] : [`betas ${opt.beta1}, ${opt.beta2}`];
      if (opt.weight_decay) knobs.push(`weight decay ${opt.weight_decay}`);
      if (opt.warmup_steps) knobs.push(`warm-up ${opt.warmup_steps} steps`);
      parts.push(`${opt.name}, ${knobs.join(", ")}`);
    }
    if (seeds) parts.push(`${seeds} seeds per cell`);
    if (spec.budget) parts.push(`${spec.budget.max_steps} steps × batch ${spec.budget.batch_size}`);
    const html = parts.map(text);
    html.push(`created ${when(sweep.created_at)}`);
    if (sweep.started_at && sweep.finished_at) {
      html.push(`took ${duration((parseTime(sweep.finished_at) - parseTime(sweep.started_at)) / 1000)}`);
    }
    return html.map((part) => `<span class="part">${part}</span>`).join(" · ");
  };

  const fillSelect = (select, options, chosen) => {
    const html = options.map(([value, label]) => `<option value="${value}">${text(label)}</option>`).join("");
    if (select.innerHTML !== html) select.innerHTML = html;
    select.value = String(chosen);
  };

  function cellRows(summary) {
    return summary.cells.map((c) => {
      const rate = c.divergence_rate;
      const shade = rate === null ? "" : rate >= 0.5 ? "rate-high" : rate > 0 ? "rate-mid" : "rate-low";
      const ci = c.divergence_ci95 ? ` [${pct(c.divergence_ci95[0])}–${pct(c.divergence_ci95[1])}]` : "";
      return `<tr data-cell="${c.cell_index}"><td class="num">${c.lr}</td><td>${text(c.clipping)}</td>
        <td class="num">${c.finished}/${c.runs}</td><td class="num">${c.diverged}</td>
        <td class="num ${shade}">${rate === null ? "–" : pct(rate) + ci}${
          c.verdict ? ` <span class="verdict-${text(c.verdict)}" title="by the anytime-valid test of adaptive seeds">${text(c.verdict)}</span>` : ""}</td>
        <td class="num">${c.converged}</td><td class="num">${c.median_steps_to_target === null ? "–" : steps(c.median_steps_to_target)}</td></tr>`;
    }).join("");
  }

  function telemetryRows(summary) {
    return summary.cells.map((c) => {
      const t = c.telemetry;
      const head = `<td class="num">${c.lr}</td><td>${text(c.clipping)}</td>`;
      if (t.reason) return `<tr data-cell="${c.cell_index}">${head}<td colspan="7" class="muted">${text(t.reason)}</td></tr>`;
      const atDivergence = t.divergence_norm.value !== null
        ? `${fmt(t.divergence_norm.value)} (${t.diverged_with_norm})` : `<span class="muted">${text(t.divergence_norm.reason)}</span>`;
      return `<tr data-cell="${c.cell_index}">${head}<td class="num">${t.steps}</td><td class="num">${pct(t.clipped_fraction)}</td>
        <td class="num">${fmt(t.norm_p50)}</td><td class="num">${fmt(t.norm_p90)}</td><td class="num">${fmt(t.norm_p99)}</td>
        <td class="num">${fmt(t.norm_max)}</td><td class="num">${atDivergence}</td></tr>`;
    }).join("");
  }

  // The cell to show first: the unclipped cell that diverged most (the cliff), else the first.
  const interestingCell = (cells) => {
    const unclipped = cells.filter((c) => c.clip_method === "none" && c.diverged > 0);
    unclipped.sort((a, b) => b.diverged - a.diverged || b.lr - a.lr);
    return (unclipped[0] ?? cells[0]).cell_index;
  };

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const sweepLink = (sweepId) => (sweepId === null || sweepId === undefined ? "–"
    : `<a href="/sweeps/${Number(sweepId)}">${Number(sweepId)}</a>`);
  // `name`: null for a deleted schedule, undefined when not known.
  const scheduleLink = (scheduleId, name) => (name === null ? `schedule ${Number(scheduleId)} (deleted)`
    : `<a href="/schedules/${Number(scheduleId)}">${text(name ?? `schedule ${scheduleId}`)}</a>`);
  // A schedule's name, or null once it is deleted (its alerts and sweeps stay).
  const scheduleName = async (scheduleId) => {
    const response = await fetch(`/api/v1/schedules/${Number(scheduleId)}`);
    if (response.status === 401) signIn();
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`/api/v1/schedules/${scheduleId}: HTTP ${response.status}`);
    return (await response.json()).name;
  };
  // A scheduled sweep: which schedule made it, and what its comparison with the baseline found (HTML).
  const comparedWith = (sweep, scheduleName) => {
    const c = sweep.comparison;
    const by = `Scheduled by ${scheduleLink(sweep.schedule_id, scheduleName)}${sweep.scheduled_for
      ? ` for ${when(sweep.scheduled_for)}` : ""}.`;
    if (!c) {
      return `<p>${by} ${sweep.finished ? "Not compared with its baseline yet."
        : "Compared with its baseline once it finishes."}</p>`;
    }
    if (c.baseline_sweep_id === null) return `<p>${by} Not compared: ${text(c.detail ?? "no baseline")}.</p>`;
    const found = c.regressions.length + c.improvements.length;
    const lines = [...c.regressions.map((f) => `<li class="regressed">${text(f.text)}</li>`),
      ...c.improvements.map((f) => `<li class="improved">${text(f.text)}</li>`)];
    const more = [];
    if (c.environment_change.length) more.push(`environment: ${text(c.environment_change.join("; "))}`);
    const alerts = c.alerts_raised.length + c.alerts_resolved.length;
    if (alerts) {
      const said = [c.alerts_raised.length ? `raised ${plural(c.alerts_raised.length, "alert")}` : null,
        c.alerts_resolved.length ? `resolved ${plural(c.alerts_resolved.length, "alert")}` : null].filter(Boolean);
      more.push(`<a href="/alerts?state=all&amp;schedule_id=${Number(sweep.schedule_id)}">${said.join(", ")}</a>`);
    }
    more.push(`<a href="/api/v1/sweeps/${Number(sweep.id)}/compare/${Number(c.baseline_sweep_id)}">full comparison</a> (JSON)`);
    return `<p>${by} Compared with <a href="/sweeps/${Number(c.baseline_sweep_id)}">sweep ${Number(c.baseline_sweep_id)}</a>: ${
      found ? "" : "no change beyond the thresholds."}</p>${lines.length ? `<ul>${lines.join("")}</ul>` : ""}
      <p class="muted">${more.join(" · ")}</p>`;
  };

  function sweepPage(id) {
    // ?tolerance= opens the page at one of the selector's tolerances (a link can carry the answer).
    const asked = new URLSearchParams(location.search).get("tolerance");
    const offered = [...$("tolerance").options].map((o) => o.value);
    const ui = { cell: null, lr: null, tolerance: Number(offered.includes(asked) ? asked : $("tolerance").value) };
    $("tolerance").value = String(ui.tolerance);
    let sweep = null;
    let summary = null;

    const drawCell = async () => {
      const width = Math.round(Math.max(200, Math.min(4000, $("losses").clientWidth || 600)));
      const chart = await api(`/api/v1/sweeps/${id}/cells/${ui.cell}/chart?width=${width}`);
      if (chart.cell_index !== ui.cell) return; // another cell was chosen meanwhile
      const threshold = clipThreshold(chart.clip_method, chart.clip_params);
      drawSeeds("losses", chart, "loss", null);
      drawSeeds("norms", chart, "grad_norm", threshold);
      $("threshold-note").textContent = threshold === null ? "" : `; dashed: the clip threshold ${threshold}`;
      const diverged = chart.curves.filter((c) => c.outcome === "diverged").length;
      const sampled = chart.curves.length - diverged;
      $("curves-note").textContent = `every diverged seed (${diverged})` + (chart.others
        ? `, ${sampled === chart.others ? "every" : `${sampled} of the ${chart.others}`} other${chart.others === 1 ? "" : "s"}` : "")
        + (marked(chart) ? "" : `; over ${MAX_MARKS} diverged, no × marks: the red curves end where each diverged`);
      const cell = summary.cells.find((c) => c.cell_index === chart.cell_index);
      drawNarrowing(cell, chart, summary.tolerance);
      $("seed-runs-what").textContent = `${cell ? ` of lr ${cell.lr} · ${cell.clipping}` : ""} (${plural(chart.runs.length, "run")})`;
      cellRuns = chart.runs;
      fillCellRuns();
    };
    // The per-seed table is folded until asked for, and a cell can have thousands of seeds: its
    // rows are made when it is open (now, or when it is unfolded), not on every draw; folded, it
    // is emptied, so that it never shows the rows of a cell chosen before.
    let cellRuns = [];
    const fillCellRuns = () => {
      document.querySelector("#cell-runs tbody").innerHTML = !$("seed-runs").open ? "" : cellRuns.map((r) => `<tr data-run="${r.run_id}">
        <td class="num">${r.seed}</td><td class="outcome-${text(r.outcome ?? "pending")}">${text(r.outcome ?? "training")}</td>
        <td>${text(r.trigger ?? "")}</td><td class="num">${r.diverged_at_step ?? ""}</td><td class="num">${r.converged_at_step ?? ""}</td>
        <td><a href="/runs/${r.run_id}">run ${r.run_id}</a></td></tr>`).join("");
    };
    $("seed-runs").addEventListener("toggle", fillCellRuns);
    const drawSummary = () => {
      const p = sweep.progress;
      const counts = Object.entries(p.by_outcome).filter(([, n]) => n).map(([o, n]) => `${n} ${o}`).join(", ");
      $("status").innerHTML = `<span class="status-${text(sweep.status)}">${doing(sweep)}</span>`
        + (sweep.status === "running" ? ` · ${pace(p)}` : "")
        + ` · ${p.done} of ${p.runs_total} runs done${counts ? ` (${text(counts)})` : ""}`;
      $("bar-fill").style.width = pct(filled(sweep));  // as in the list: cancelled and failed runs fill none
      $("about").innerHTML = about(sweep);
      $("error").hidden = !sweep.error;
      $("error").textContent = sweep.error || "";
      $("headline").hidden = !summary.headline;
      $("headline").textContent = summary.headline ?? "";
      const cells = summary.cells;
      if (ui.cell === null) ui.cell = interestingCell(cells);
      if (ui.lr === null) ui.lr = cells.find((c) => c.cell_index === ui.cell).lr;
      fillSelect($("cell-select"), cells.map((c) => [c.cell_index, `lr ${c.lr} · ${c.clipping}`]), ui.cell);
      fillSelect($("convergence-lr"), unique(cells.map((c) => c.lr)).sort((a, b) => a - b).map((lr) => [lr, lr]), ui.lr);
      drawHeatmap(cells, !sweep.finished);
      drawFrontier(summary);
      drawConvergence(summary, ui.lr, sweep.spec.budget.max_steps);
      document.querySelector("#cells tbody").innerHTML = cellRows(summary);
      document.querySelector("#telemetry tbody").innerHTML = telemetryRows(summary);
    };
    let schedule;  // its schedule's name; undefined: not asked yet, null: deleted
    const drawCompared = async () => {
      const box = $("compared");
      box.hidden = sweep.schedule_id === null || sweep.schedule_id === undefined;
      if (box.hidden) return;
      if (schedule === undefined) schedule = await scheduleName(sweep.schedule_id);
      box.className = `compared${sweep.comparison?.regressions.length ? " worse" : ""}`;
      box.innerHTML = comparedWith(sweep, schedule);
    };
    const load = async () => {
      [sweep, summary] = await Promise.all([api(`/api/v1/sweeps/${id}`),
        api(`/api/v1/sweeps/${id}/summary?tolerance=${ui.tolerance}`), plotlyLoaded()]);
      await drawCompared();
      drawSummary();
      await drawCell();
      // Every chart has drawn once: bench/api.py and the browser test wait for this.
      document.documentElement.dataset.rendered = "1";
      // A scheduled sweep's comparison comes shortly after it finishes.
      return !sweep.finished || (sweep.schedule_id !== null && !sweep.comparison && sweep.finished_at
        && Date.now() - parseTime(sweep.finished_at) < 60 * 1000);
    };
    // A failure in a handler shows in #load-error like a failed refresh.
    const shown = (action) => async (e) => {
      try {
        await action(e);
        $("load-error").hidden = true;
      } catch (err) {
        $("load-error").textContent = `Could not update the page (${err.message}).`;
        $("load-error").hidden = false;
      }
    };
    $("cell-select").addEventListener("change", shown((e) => { ui.cell = Number(e.target.value); return drawCell(); }));
    $("convergence-lr").addEventListener("change", shown((e) => {
      ui.lr = Number(e.target.value);
      if (sweep) drawConvergence(summary, ui.lr, sweep.spec.budget.max_steps);
    }));
    $("tolerance").addEventListener("change", shown(async (e) => {
      ui.tolerance = Number(e.target.value);
      history.replaceState(null, "", `?tolerance=${e.target.value}`);
      summary = await api(`/api/v1/sweeps/${id}/summary?tolerance=${ui.tolerance}`);
      if (sweep) drawSummary();
    }));
    repeatWhile(load, 2);
  }

  function runPage(id) {
    const load = async () => {
      const [run, points] = await Promise.all([api(`/api/v1/runs/${id}`), api(`/api/v1/runs/${id}/points`),
        plotlyLoaded()]);
      const done = run.outcome === "diverged" ? `diverged at step ${run.diverged_at_step} (${run.trigger})`
        : run.outcome === "converged" ? `converged at step ${run.converged_at_step}`
          : run.outcome === "unconverged" ? `did not reach the target in ${run.steps_done} steps`
            : run.outcome ?? "still training";
      $("outcome").innerHTML = `<span class="outcome-${text(run.outcome ?? "pending")}">${text(done)}</span> · lr ${run.lr} · ${text(run.clipping)}`;
      const facts = [["sweep", `<a href="/sweeps/${run.sweep_id}">${text(run.sweep_name)}</a>`], ["seed", run.seed],
        ["outcome", run.outcome ?? "–"], ["trigger", run.trigger ?? "–"], ["steps done", run.steps_done ?? "–"],
        ["initial loss", fmt(run.initial_loss)], ["final loss", fmt(run.final_loss)], ["min loss", fmt(run.min_loss)],
        ["final eval loss", fmt(run.final_eval_loss)], ["clipped steps", run.clipped_steps ?? "–"],
        ["max pre-clip norm", fmt(run.max_grad_norm)], ["norm before divergence", fmt(run.divergence_grad_norm)],
        ["device", text(run.device ?? "–")], ["node", text(run.node ?? "–")], ["attempts", run.attempts]];
      if (run.error) facts.push(["error", `<span class="error">${text(run.error)}</span>`]);
      document.querySelector("#facts tbody").innerHTML = facts.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("");
      const chart = { curves: [{ ...points, seed: run.seed, outcome: run.outcome, trigger: run.trigger, diverged_at_step: run.diverged_at_step }] };
      const clip = run.config.clipping;
      drawSeeds("run-loss", chart, "loss", null);
      drawSeeds("run-norm", chart, "grad_norm", clipThreshold(clip.method, clip.params));
      $("reproduce").textContent = run.reproduce;
      $("config").textContent = JSON.stringify({ ...run.config, seed: run.seed }, null, 2);
      document.documentElement.dataset.rendered = "1";
      return run.outcome === null;
    };
    repeatWhile(load, 2);
  }

  // ---- alerts ------------------------------------------------------------------------------
  // Open alerts first, then those someone is on, those waiting for a repeat, and the settled ones.
  const ALERT_STATES = ["open", "acknowledged", "pending", "resolved", "noted"];
  const byState = (a, b) => ALERT_STATES.indexOf(a.state) - ALERT_STATES.indexOf(b.state) || b.id - a.id;
  // The seeds that diverge now and did not in the baseline: the first few, then how many more.
  const flippedSeeds = (alert, shown = 8) => {
    const seeds = alert.evidence?.flipped_seeds;
    if (!Array.isArray(seeds) || !seeds.length) return "–";
    return text(seeds.length <= shown ? seeds.join(", ")
      : `${seeds.slice(0, shown).join(", ")} and ${seeds.length - shown} more`);
  };
  // One alert as a table row (HTML). `names`: schedule names by id, for a schedule column; null: none.
  const alertRow = (a, names) => {
    const after = a.state === "acknowledged"
      ? `acknowledged ${when(a.acknowledged_at)}${a.acknowledged_by ? ` by ${text(a.acknowledged_by)}` : ""}`
      : a.state === "resolved" ? `resolved ${when(a.resolved_at)}${a.resolution ? `: ${text(a.resolution)}` : ""}`
        : a.state === "pending" ? `seen in ${plural(a.streak, "sweep")} in a row so far` : "";
    return `<tr data-alert="${Number(a.id)}" class="alert-row">
      <td><span class="badge alert-${text(a.state)}">${text(a.state)}</span></td><td>${text(a.kind)}</td>
      <td class="alert-text">${text(a.text)}${after ? `<br><span class="muted">${after}</span>` : ""}</td>
      ${names ? `<td>${scheduleLink(a.schedule_id, names.get(a.schedule_id))}</td>` : ""}
      <td>${sweepLink(a.sweep_id)}</td><td>${sweepLink(a.baseline_sweep_id)}</td>
      <td class="seeds">${flippedSeeds(a)}</td><td>${when(a.created_at)}</td>
      <td>${a.state === "open" ? `<button type="button" class="ack" data-ack="${Number(a.id)}">Acknowledge</button>` : ""}</td></tr>`;
  };
  // A write the page makes: its error is the API's `detail`. The sign-in cookie never authorizes a
  // write, so with auth on the API refuses it (401, saying so): then add how to do it instead.
  const post = async (path, instead) => {
    const response = await fetch(path, { method: "POST", headers: { accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body?.detail;
      const said = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : `HTTP ${response.status}`;
      throw new Error(response.status === 401 ? `${said}; ${instead}` : said);
    }
    return body;
  };
  // Acknowledge buttons in `table`: POST, then `reload()` the page's data; a refusal shows in `shown`.
  const acknowledging = (table, shown, reload) => table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-ack]");
    if (!button) return;
    button.disabled = true;
    try {
      const alertId = Number(button.dataset.ack);
      await post(`/api/v1/alerts/${alertId}/acknowledge`, `run \`clipsweep alerts ack ${alertId}\` with a write token`);
      shown.hidden = true;
    } catch (err) {
      shown.textContent = `Could not acknowledge alert ${button.dataset.ack}: ${err.message}`;
      shown.hidden = false;
      button.disabled = false;
    }
    try {
      await reload();
    } catch (err) {
      $("load-error").textContent = `Could not refresh (${err.message}).`;
      $("load-error").hidden = false;
    }
  });

  function alertsPage() {
    const body = document.querySelector("#alerts tbody");
    const filter = $("state-filter");
    const more = $("more");
    const params = new URLSearchParams(location.search);
    const asked = params.get("state");
    filter.value = [...filter.options].some((o) => o.value === asked) ? asked : "open";
    const scheduleId = Number(params.get("schedule_id")) || null;  // ?schedule_id=: one schedule's alerts
    const names = new Map();
    const load = async () => {
      const query = new URLSearchParams({ limit: "200" });
      if (filter.value !== "all") query.set("state", filter.value);
      if (scheduleId !== null) query.set("schedule_id", String(scheduleId));
      const page = await api(`/api/v1/alerts?${query}`);
      const unnamed = unique([...page.items.map((a) => a.schedule_id), ...(scheduleId === null ? [] : [scheduleId])])
        .filter((s) => !names.has(s));
      await Promise.all(unnamed.map(async (s) => names.set(s, await scheduleName(s))));
      const items = [...page.items].sort(byState);
      $("scope").hidden = scheduleId === null;
      if (scheduleId !== null) {
        $("scope").innerHTML = `of ${scheduleLink(scheduleId, names.get(scheduleId))} only · <a href="/alerts${
          filter.value === "open" ? "" : `?state=${encodeURIComponent(filter.value)}`}">every schedule's</a>`;
      }
      const what = `${filter.value === "all" ? "" : `${text(filter.value)} `}alerts${scheduleId === null ? ""
        : ` of ${scheduleLink(scheduleId, names.get(scheduleId))}`}`;
      body.innerHTML = items.length ? items.map((a) => alertRow(a, names)).join("")
        : `<tr><td colspan="9" class="muted">No ${what}.</td></tr>`;
      more.hidden = page.total <= page.items.length;
      more.textContent = `Showing the newest ${page.items.length} of ${page.total} alerts.`;
      document.documentElement.dataset.rendered = "1";
      return true;
    };
    filter.addEventListener("change", () => {
      const query = new URLSearchParams();
      if (filter.value !== "open") query.set("state", filter.value);
      if (scheduleId !== null) query.set("schedule_id", String(scheduleId));
      history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
      load().catch((err) => { $("load-error").textContent = `Could not load the alerts (${err.message}).`; $("load-error").hidden = false; });
    });
    acknowledging($("alerts"), $("alert-error"), load);
    repeatWhile(load, 30);
  }

  // What a scheduled sweep's comparison with its baseline found, in a few words (HTML), for a table cell.
  const versus = (c) => {
    if (!c) return '<td class="muted">–</td>';
    if (c.baseline_sweep_id === null) return `<td class="muted">${text(c.detail ?? "–")}</td>`;
    const found = [];
    if (c.regressions.length) found.push(`<span class="regressed">${plural(c.regressions.length, "regression")}</span>`);
    if (c.improvements.length) found.push(`<span class="improved">${plural(c.improvements.length, "improvement")}</span>`);
    const said = [...c.regressions, ...c.improvements].map((f) => f.text).join("\n");
    return `<td class="versus"${said ? ` title="${text(said)}"` : ""}>${found.length ? found.join(", ") : "no change"} <span class="muted">vs ${
      sweepLink(c.baseline_sweep_id)}</span></td>`;
  };

  // ---- schedules ---------------------------------------------------------------------------
  const nextFire = (s) => (s.next_fire_times.length ? when(s.next_fire_times[0]) : "paused");
  const divergedOf = (fire) => (fire?.by_outcome ? fire.by_outcome.diverged ?? 0 : "–");

  function schedulesPage() {
    const body = document.querySelector("#schedules tbody");
    const load = async () => {
      const page = await api("/api/v1/schedules?limit=200");
      const last = await Promise.all(page.items.map(async (s) => {
        const fire = (await api(`/api/v1/schedules/${s.id}/sweeps?limit=1`)).items[0];
        const headline = fire?.sweep_id ? (await api(`/api/v1/sweeps/${fire.sweep_id}/summary`)).headline : null;
        return { fire, headline };
      }));
      body.innerHTML = page.items.length ? page.items.map((s, i) => {
        const { fire, headline } = last[i];
        const sweep = fire?.sweep_id ? `<a href="/sweeps/${fire.sweep_id}">${fire.sweep_id}</a> ${text(fire.sweep_status)}` : "–";
        return `<tr data-schedule="${s.id}"><td class="num">${s.id}</td>
          <td><a href="/schedules/${s.id}">${text(s.name)}</a></td><td>${text(s.description)}</td>
          <td>${nextFire(s)}</td><td>${fire ? `${when(fire.scheduled_for)} ${text(fire.outcome)}` : "–"}</td>
          <td>${sweep}</td><td class="num">${divergedOf(fire)}</td><td>${text(headline ?? "–")}</td></tr>`;
      }).join("") : '<tr><td colspan="8" class="muted">No schedules.</td></tr>';
      return false;
    };
    repeatWhile(load, 30);
  }

  // What differs in a sweep's environment from the one before, e.g. "torch 2.13.0 → 2.14.0".
  const changes = (before, after) => (before && after ? Object.keys({ ...before, ...after })
    .filter((k) => before[k] !== after[k]).map((k) => `${k} ${before[k] ?? "none"} → ${after[k] ?? "none"}`) : []);

  function schedulePage(id) {
    const lrSelect = $("trend-lr");
    let nights = [];
    const drawTrends = () => {
      const lr = Number(lrSelect.value);
      const x = nights.map((n) => n.fire.scheduled_for);
      const arms = unique(nights.flatMap((n) => n.summary.cells.map((c) => c.clipping)));
      const cell = (n, arm) => n.summary.cells.find((c) => c.lr === lr && c.clipping === arm);
      const divergence = [];
      const steps = [];
      for (const arm of arms) {
        const color = armColor(arms, arm);
        const own = nights.map((n) => cell(n, arm));
        const rated = own.map((c, i) => [x[i], c]).filter(([, c]) => c && c.divergence_ci95);
        divergence.push({ // the Wilson band, up along the upper bounds and back along the lower ones
          x: [...rated.map(([t]) => t), ...rated.map(([t]) => t).reverse()],
          y: [...rated.map(([, c]) => c.divergence_ci95[1]), ...rated.map(([, c]) => c.divergence_ci95[0]).reverse()],
          fill: "toself", fillcolor: alpha(color, 0.15), line: { width: 0 }, hoverinfo: "skip",
          showlegend: false, legendgroup: arm, mode: "lines" });
        divergence.push({ x: rated.map(([t]) => t), y: rated.map(([, c]) => c.divergence_rate), name: arm,
          legendgroup: arm, mode: "lines+markers", line: { color, width: 2 },
          customdata: rated.map(([, c]) => `${c.diverged}/${c.finished}`),
          hovertemplate: `${text(arm)}<br>%{x}: %{y:.0%} (%{customdata})<extra></extra>` });
        steps.push({ x, y: own.map((c) => (c ? num(c.median_steps_to_target) : null)), name: arm,
          mode: "lines+markers", line: { color, width: 2 } });
      }
      // A chart with no value at all says why instead of showing empty axes.
      const unless = (traces, why) => (traces.some((t) => t.y.some((y) => y !== null)) ? {}
        : { annotations: [{ text: why, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false }] });
      const frontier = arms.map((arm) => ({ x, name: arm, mode: "lines+markers",
        line: { color: armColor(arms, arm), width: 2 },
        y: positive(nights.map((n) => n.summary.frontier.find((f) => f.clipping === arm)?.stable_lr.value ?? null)) }));
      const xaxis = { title: { text: "fire time (UTC)" } };  // plotly shows ISO times as written: UTC
      const { marks, shapes } = alertMarks();
      draw("trend-divergence", [...divergence, ...marks], { xaxis, shapes, yaxis2: OVERLAY,
        yaxis: { title: { text: "divergence rate" }, tickformat: ".0%", range: [-0.02, 1.02] },
        ...unless(divergence, "no run has finished yet") });
      draw("trend-steps", [...steps, ...marks], { xaxis, shapes, yaxis2: OVERLAY, yaxis: { title: { text: "median steps to target" } },
        ...unless(steps, "no night had more than half its runs at the target at this learning rate") });
      draw("trend-frontier", [...frontier, ...marks], { xaxis, shapes, yaxis2: OVERLAY, yaxis: { title: { text: "highest stable lr" }, type: "log" },
        ...unless(frontier, "no night had a learning rate with its divergence upper bound under 5%") });
    };
    // The nights whose comparison with the baseline raised regression alerts (a red ▼ at the top
    // and a dotted line) or resolved alerts (a green ▲), on an axis of their own over each chart.
    const OVERLAY = { overlaying: "y", range: [0, 1.05], visible: false, fixedrange: true };
    const alertMarks = () => {
      const marks = [];
      const shapes = [];
      const mark = (shown, name, symbol, color, y, said) => {
        if (!shown.length) return;
        marks.push({ x: shown.map((n) => n.fire.scheduled_for), y: shown.map(() => y), yaxis: "y2", name,
          mode: "markers", marker: { symbol, size: 13, color, line: { color: "#fff", width: 1 } }, cliponaxis: false,
          customdata: shown.map((n) => said(n.fire.comparison, n.fire.sweep_id).map(text).join("<br>")),
          hovertemplate: "%{customdata}<extra></extra>" });
        shapes.push(...shown.map((n) => ({ type: "line", xref: "x", yref: "paper", x0: n.fire.scheduled_for,
          x1: n.fire.scheduled_for, y0: 0, y1: 1, layer: "below", line: { color, dash: "dot", width: 1 } })));
      };
      const compared = nights.filter((n) => n.fire.comparison);
      mark(compared.filter((n) => n.fire.comparison.alerts_raised.length && n.fire.comparison.regressions.length),
        "regression alert", "triangle-down", DIVERGED, 1.0, (c, sweepId) => [
          `sweep ${sweepId} vs sweep ${c.baseline_sweep_id}: ${plural(c.regressions.length, "regression")}`,
          ...c.regressions.map((r) => r.text), ...c.environment_change]);
      mark(compared.filter((n) => n.fire.comparison.alerts_resolved.length), "alert resolved", "triangle-up",
        "#1a7f37", 0.93, (c, sweepId) => [`sweep ${sweepId}: ${plural(c.alerts_resolved.length, "alert")} resolved`,
          ...c.improvements.map((r) => r.text)]);
      return { marks, shapes };
    };
    lrSelect.addEventListener("change", drawTrends);
    const load = async () => {
      const schedule = await api(`/api/v1/schedules/${id}`);
      $("about").innerHTML = `${text(schedule.description)}; next fire ${nextFire(schedule)}`;
      $("policies").textContent = `concurrency ${schedule.concurrency}, catch-up ${schedule.catch_up}, `
        + `starting deadline ${duration(schedule.starting_deadline)}, seeds ${schedule.seed_policy}`;
      const fires = (await api(`/api/v1/schedules/${id}/sweeps?limit=60`)).items;
      const made = fires.filter((f) => f.sweep_id).reverse();  // oldest first
      nights = await Promise.all(made.map(async (fire) => ({ fire, sweep: await api(`/api/v1/sweeps/${fire.sweep_id}`),
        summary: await api(`/api/v1/sweeps/${fire.sweep_id}/summary`) })));
      const changed = new Map(nights.map((n, i) => {
        const before = nights[i - 1];
        if (!before) return [n.fire.sweep_id, []];
        const spec = before.fire.schedule_version !== n.fire.schedule_version
          ? [`spec v${before.fire.schedule_version} → v${n.fire.schedule_version}`] : [];
        return [n.fire.sweep_id, [...spec, ...changes(before.sweep.environment, n.sweep.environment)]];
      }));
      document.querySelector("#fires tbody").innerHTML = fires.length ? fires.map((f) => {
        const what = changed.get(f.sweep_id) ?? [];
        return `<tr><td>${when(f.scheduled_for)}</td><td>${text(f.outcome)}${f.detail ? ` <span class="muted">${text(f.detail)}</span>` : ""}</td>
          <td>${f.sweep_id ? `<a href="/sweeps/${f.sweep_id}">${f.sweep_id}</a>` : "–"}</td><td>${text(f.sweep_status ?? "–")}</td>
          <td class="num">${divergedOf(f)}</td>${versus(f.comparison)}
          <td class="${what.length ? "changed" : "muted"}">${what.length ? text(what.join("; ")) : "–"}</td></tr>`;
      }).join("") : '<tr><td colspan="7" class="muted">No fire time has come yet.</td></tr>';
      // Its alerts: the active ones first, then the last few resolved (improvements are on /alerts).
      const alerts = (await api(`/api/v1/alerts?schedule_id=${id}&limit=200`)).items;
      const active = alerts.filter((a) => ["open", "acknowledged", "pending"].includes(a.state)).sort(byState);
      const settled = alerts.filter((a) => a.state === "resolved").slice(0, 5);
      document.querySelector("#schedule-alerts tbody").innerHTML = active.length + settled.length
        ? [...active, ...settled].map((a) => alertRow(a, null)).join("")
        : '<tr><td colspan="8" class="muted">No alerts: no sweep of this schedule has regressed against its baseline.</td></tr>';
      const lrs = unique(nights.flatMap((n) => n.summary.cells.map((c) => c.lr))).sort((a, b) => a - b);
      const chosen = lrSelect.value || String(lrs[lrs.length - 1] ?? "");
      lrSelect.innerHTML = lrs.map((lr) => `<option value="${lr}">${lr}</option>`).join("");
      lrSelect.value = chosen;
      await plotlyLoaded();
      drawTrends();
      document.documentElement.dataset.rendered = "1";
      // Refreshed while a sweep trains, and for a while after one ends: its comparison comes shortly after.
      const comparing = (n) => !n.fire.comparison && n.sweep.finished_at
        && Date.now() - parseTime(n.sweep.finished_at) < 60 * 1000;
      return nights.some((n) => !n.sweep.finished || comparing(n));
    };
    acknowledging($("schedule-alerts"), $("alert-error"), load);
    repeatWhile(load, 10);
  }

  function signInPage() {
    const form = document.getElementById("sign-in");
    const error = document.getElementById("sign-in-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch("/api/v1/session", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: document.getElementById("token").value.trim() }),
      });
      if (response.ok) {
        const next = new URLSearchParams(location.search).get("next") ?? "/";
        location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");  // never off this site
        return;
      }
      error.textContent = (await response.json()).detail ?? `HTTP ${response.status}`;
      error.hidden = false;
    });
  }

  return { sweepsPage, sweepPage, runPage, schedulesPage, schedulePage, alertsPage, signInPage,
    format: { pct, count, steps, rate, duration } };
})();

// Each page names itself on <body>: no inline script, so the Content-Security-Policy allows only this file.
(() => {
  const { page, id } = document.body.dataset;
  const start = { sweeps: clipsweep.sweepsPage, sweep: clipsweep.sweepPage, run: clipsweep.runPage,
    schedules: clipsweep.schedulesPage, schedule: clipsweep.schedulePage, alerts: clipsweep.alertsPage,
    "sign-in": clipsweep.signInPage }[page];
  if (start) start(id ? Number(id) : undefined);
})();
