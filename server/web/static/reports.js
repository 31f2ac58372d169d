/* The monthly compliance report for officers (any factory, or all) and operators (their own):
 * a summary of the month and its files (PDF, XLSX, CSV) in Thai or English. The files are fetched
 * with the session's token and saved from a blob, so a logged-in user never meets a 401. */
"use strict";

(() => {
  const { t, api, el, cfg, session, link } = EIT;
  const form = document.getElementById("report-form");
  const status = document.getElementById("report-status");

  function previousMonth() {
    // The month before this one in the town's time zone.
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: cfg.timezone, year: "numeric", month: "2-digit" }).format(new Date()).split("-");
    let y = Number(parts[0]), m = Number(parts[1]) - 1;
    if (m === 0) { y -= 1; m = 12; }
    return `${y}-${String(m).padStart(2, "0")}`;
  }

  function period() {
    const [y, m] = form.month.value.split("-").map(Number);
    const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
    return { from: `${form.month.value}-01`, to: `${form.month.value}-${String(last).padStart(2, "0")}` };
  }

  function query(format) {
    const p = period();
    const q = new URLSearchParams({ from: p.from, to: p.to, format, lang: form.lang.value });
    if (form.factory.value) q.set("factory", form.factory.value);
    return `/api/v1/reports/compliance?${q}`;
  }

  async function download(format) {
    status.textContent = t("loading");
    const s = session.get();
    try {
      const r = await fetch(query(format), { headers: s ? { Authorization: "Bearer " + s.token } : {} });
      if (!r.ok) {
        let detail = r.statusText;
        try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
        throw new EIT.ApiError(r.status, detail);
      }
      const blob = await r.blob();
      const p = period();
      const name = `compliance-${form.factory.value || cfg.town.id}-${p.from}-${p.to}-${form.lang.value}.${format}`;
      const a = el("a", { href: URL.createObjectURL(blob), download: name });
      document.body.append(a);
      a.click();
      a.remove();
      status.textContent = t("reports_saved", { name });
    } catch (err) {
      status.textContent = EIT.explain(err);
    }
  }

  async function summary() {
    const table = document.getElementById("report-table");
    const p = period();
    const q = new URLSearchParams({ from: p.from, to: p.to });
    if (form.factory.value) q.set("factory", form.factory.value);
    document.getElementById("report-period").textContent = `${EIT.fmtDay(p.from)} – ${EIT.fmtDay(p.to)} · ${EIT.tzLabel()}`;
    table.replaceChildren(el("caption", { class: "hint" }, t("loading")));
    try {
      const report = await api(`/api/v1/reports/compliance?${q}`);
      const rows = [];
      for (const f of report.factories) {
        for (const ch of f.channels) {
          rows.push(el("tr", { "data-channel": `${f.id}/${ch.device}/${ch.channel}` },
            el("td", {}, EIT.factoryName(f)),
            el("td", {}, `${EIT.paramName(ch.parameter)} · ${ch.device}`),
            el("td", { class: "num" }, `${ch.valid_hours}/${ch.expected_hours}`),
            el("td", { class: "num" + (ch.complete ? "" : " flagged") }, `${Math.round(ch.completeness * 100)} %`),
            el("td", { class: "num" + (ch.exceedances.length ? " flagged" : "") }, ch.exceedances.length),
            el("td", { class: "num" }, ch.invalid_hours.length)));
        }
      }
      table.replaceChildren(
        el("thead", {}, el("tr", {}, ...["filter_factory", "report_channel", "report_valid_hours", "report_completeness",
          "report_exceedances", "reports_invalid_hours"].map((k) => el("th", { scope: "col" }, t(k))))),
        el("tbody", {}, rows));
    } catch (err) {
      table.replaceChildren(el("caption", { class: "error" }, EIT.explain(err)));
    }
    document.body.dataset.loaded = "true";
  }

  async function start() {
    const s = session.get();
    if (!s) {
      EIT.message(t("need_login"));
      document.getElementById("message").append(" ", el("a", { href: link("/login", { next: "/reports" }) }, t("login")));
      document.body.dataset.loaded = "true";
      return;
    }
    document.getElementById("reports").hidden = false;
    form.month.value = previousMonth();
    const select = form.factory;
    if (s.user.role === "operator") {
      select.replaceChildren(el("option", { value: s.user.factory }, s.user.factory));
      try {
        const f = await api(`/api/v1/factories/${s.user.factory}`);
        select.replaceChildren(el("option", { value: f.id }, EIT.factoryName(f)));
      } catch (e) { /* the id stays */ }
    } else {
      try {
        for (const f of await api("/api/v1/factories")) select.append(el("option", { value: f.id }, EIT.factoryName(f)));
      } catch (e) { /* all factories stay selectable */ }
    }
    for (const b of form.querySelectorAll("button[data-format]")) b.addEventListener("click", () => download(b.dataset.format));
    form.month.addEventListener("change", summary);
    select.addEventListener("change", summary);
    await summary();
  }

  start();
})();
