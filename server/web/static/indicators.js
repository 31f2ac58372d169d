/* The public "Town indicators" page: each indicator of the town's scoreboard (GET /api/v1/indicators,
 * the public factories' figures) with its latest month, its year, a month-by-month trend and its
 * progress against the target and the straight-line trajectory; filtered by owner agency. */
"use strict";

(() => {
  const { t, api, el, fmtNum, lang } = EIT;

  function name(pair) { return (lang === "th" && pair.th) ? pair.th : pair.en; }

  function latest(periods, kind) {
    const found = periods.filter((p) => p.kind === kind && p.value !== null);
    return found.length ? found[found.length - 1] : null;
  }

  function sparkline(periods) {
    const months = periods.filter((p) => p.kind === "month");
    const values = months.map((p) => p.value).filter((v) => v !== null);
    if (values.length < 2) return null;
    const W = 240, H = 48, PAD = 4;
    const lo = Math.min(0, ...values), hi = Math.max(...values) || 1;
    const x = (i) => PAD + i * (W - 2 * PAD) / (months.length - 1);
    const y = (v) => H - PAD - (v - lo) * (H - 2 * PAD) / (hi - lo || 1);
    const points = months.map((p, i) => (p.value === null ? null : `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`))
      .filter(Boolean);
    const d = "M" + points.join(" L");
    return el("svg", { viewBox: `0 0 ${W} ${H}`, class: "sparkline", role: "img", "aria-label": t("indicators_trend") },
      el("title", {}, t("indicators_trend")),
      el("path", { d, fill: "none", stroke: "#1565c0", "stroke-width": 2 }));
  }

  function progress(ind, periods) {
    const target = ind.target;
    if (!target) return el("p", { class: "hint" }, t("indicators_no_target"));
    const current = latest(periods, target.period);
    const parts = [
      el("p", { class: "target" }, t("indicators_target", {
        value: fmtNum(target.target.value), unit: ind.unit, year: target.target.year,
        baseline: fmtNum(target.baseline.value), baseline_year: target.baseline.year,
      }), target.illustrative ? el("span", { class: "badge illustrative" }, t("indicators_illustrative")) : null),
    ];
    if (current && current.trajectory !== null) {
      parts.push(el("p", {}, t("indicators_trajectory", { period: current.period, value: fmtNum(current.trajectory) }), " ",
        el("span", { class: "badge " + (current.on_track ? "compliant" : "exceeding"), "data-on-track": String(current.on_track) },
          t(current.on_track ? "indicators_on_track" : "indicators_off_track"))));
      const span = target.target.value - target.baseline.value;
      if (span !== 0) {
        const share = Math.max(0, Math.min(1, (current.value - target.baseline.value) / span));
        const percent = Math.round(share * 100);
        parts.push(el("progress", { max: 100, value: percent, "aria-label": t("indicators_progress", { percent }) }),
          el("p", { class: "hint" }, t("indicators_progress", { percent })));
      }
    }
    return el("div", { class: "progress" }, parts);
  }

  function card(ind) {
    const month = latest(ind.periods, "month");
    const year = latest(ind.periods, "year");
    const figure = (p, label) => el("div", { class: "figure" },
      el("span", { class: "hint" }, label),
      el("strong", { class: "value" }, p ? fmtNum(p.value) + " " + ind.unit : t("indicators_no_value")),
      p ? el("span", { class: "hint" }, t("indicators_factories", { n: p.factories, m: p.factories_total })) : null);
    return el("article", { class: "card indicator-card", "data-indicator": ind.id, "data-owner": ind.owner },
      el("h2", {}, name(ind.name)),
      el("p", { class: "hint" }, t("indicators_owner", { name: name(ind.owner_name) }), " · ",
        t(ind.direction === "lower" ? "indicators_lower_better" : "indicators_higher_better")),
      el("div", { class: "figures" },
        figure(month, t("indicators_latest", { period: month ? month.period : "–" })),
        figure(year, t("indicators_year", { period: year ? year.period : "–" }))),
      sparkline(ind.periods),
      progress(ind, ind.periods));
  }

  const select = document.getElementById("agency");
  let agenciesListed = false;

  async function load() {
    const box = document.getElementById("indicators");
    try {
      const q = new URLSearchParams({ scope: "public" });
      if (select.value) q.set("agency", select.value);
      const board = await api("/api/v1/indicators?" + q.toString(), { auth: false });
      document.getElementById("indicators-intro").textContent =
        t("indicators_intro", { n: board.factories_in_scope, m: board.factories_total });
      if (!agenciesListed) {
        for (const [id, names] of Object.entries(board.agencies)) select.append(el("option", { value: id }, name(names)));
        agenciesListed = true;
      }
      box.replaceChildren(...(board.indicators.length ? board.indicators.map(card) : [el("p", { class: "hint" }, t("indicators_none"))]));
      const q2 = new URLSearchParams({ from: board.from, to: board.to });
      document.getElementById("open-data").setAttribute("href", "/api/v1/open-data.zip?" + q2.toString());
      document.body.dataset.loaded = "true";
    } catch (err) {
      box.replaceChildren(el("p", { class: "error" }, EIT.explain(err)));
    }
  }

  select.addEventListener("change", () => { document.body.dataset.loaded = "false"; load(); });
  load();
})();
