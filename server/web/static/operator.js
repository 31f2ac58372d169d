/* The factory operator's page: what the regulator sees of the factory (state, latest values,
 * yesterday's compliance report) and its alerts, each answered with the cause and the corrective
 * action. */
"use strict";

(() => {
  const { t, api, el, fmtTime, fmtNum, link, stateBadge, factoryName, session, toast } = EIT;
  let me = null;

  function responseForm(a) {
    const form = el("form", { class: "stack response-form" },
      el("label", {}, t("cause"), el("textarea", { name: "cause", required: true, maxlength: 4000 })),
      el("label", {}, t("corrective_action"), el("textarea", { name: "corrective_action", required: true, maxlength: 4000 })),
      el("button", { type: "submit" }, t("send_response")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { cause: form.elements.cause.value.trim(), corrective_action: form.elements.corrective_action.value.trim() };
      try {
        await api(`/api/v1/alerts/${a.id}/response`, { method: "POST", body });
        toast(t("response_sent"));
        await loadAlerts();
      } catch (err) {
        toast(EIT.explain(err));
      }
    });
    return form;
  }

  function alertItem(a) {
    const responses = a.responses.map((r) => el("div", { class: "response" },
      el("div", {}, el("strong", {}, t("cause") + ": "), r.cause),
      el("div", {}, el("strong", {}, t("corrective_action") + ": "), r.corrective_action),
      el("div", { class: "hint" }, `${r.by} · ${fmtTime(r.at)}`)));
    return el("li", { class: `alert ${a.severity} state-${a.state}`, "data-alert-id": a.id, "data-state": a.state },
      el("div", { class: "head" },
        el("span", { class: "badge " + a.severity }, t("severity_" + a.severity)),
        el("span", { class: "badge " + a.state }, t("state_" + a.state)),
        el("span", { class: "where" }, `${a.device} · ${EIT.paramName(a.parameter)}`)),
      el("p", { class: "text" }, a.text),
      el("div", { class: "meta" }, `${t("opened")}: ${fmtTime(a.opened_at)} · ${t("assignee")}: ${a.assignee || t("nobody")}`),
      el("h4", {}, t("factory_responses")),
      ...(responses.length ? responses : [el("p", { class: "hint" }, t("no_responses"))]),
      // Active alerts are answered; a resolved one keeps what was said.
      a.state === "open" || a.state === "acknowledged" ? responseForm(a) : null);
  }

  async function loadAlerts() {
    const [active, recent] = await Promise.all([
      api(`/api/v1/alerts?state=active&limit=100&lang=${EIT.lang}`),
      api(`/api/v1/alerts?limit=10&lang=${EIT.lang}`),
    ]);
    const seen = new Set(active.map((a) => a.id));
    // What waits for the factory's answer first, then the other active ones, then the recent rest.
    const waiting = (a) => (a.state === "open" || a.state === "acknowledged") && !a.responses.length;
    const alerts = [...active.filter(waiting), ...active.filter((a) => !waiting(a)), ...recent.filter((a) => !seen.has(a.id))];
    const items = alerts.map(alertItem);
    document.getElementById("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "hint" }, t("no_alerts"))]));
  }

  async function loadReport() {
    const box = document.getElementById("report");
    const report = await api("/api/v1/reports/compliance?format=json");
    const rows = [];
    for (const f of report.factories) {
      for (const ch of f.channels) {
        rows.push(el("tr", {},
          el("td", {}, `${EIT.paramName(ch.parameter)} · ${ch.device}`),
          el("td", { class: "num" }, `${ch.valid_hours}/${ch.expected_hours}`),
          el("td", { class: "num" + (ch.complete ? "" : " flagged") }, `${Math.round(ch.completeness * 100)} %`),
          el("td", { class: "num" + (ch.exceedances.length ? " flagged" : "") }, ch.exceedances.length)));
      }
    }
    const download = el("button", { type: "button", class: "secondary" }, t("report_download_csv"));
    download.addEventListener("click", async () => {
      const text = await api(`/api/v1/reports/compliance?format=csv&from=${report.from}&to=${report.to}`);
      const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `compliance-${me.factory}-${report.from}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
    });
    box.replaceChildren(
      el("p", { class: "hint" }, `${report.from} – ${report.to}`),
      el("table", { class: "values", id: "report-table" },
        el("thead", {}, el("tr", {}, el("th", {}, t("report_channel")), el("th", {}, t("report_valid_hours")),
          el("th", {}, t("report_completeness")), el("th", {}, t("report_exceedances")))),
        el("tbody", {}, rows)),
      download);
  }

  async function start() {
    const s = session.get();
    if (!s) {
      EIT.message(t("need_login"));
      document.getElementById("message").append(" ", el("a", { href: link("/login", { next: "/operator" }) }, t("login")));
      return;
    }
    me = s.user;
    if (me.role !== "operator") {
      location.replace(link("/console"));
      return;
    }
    document.getElementById("operator").hidden = false;
    try {
      const [f, latest] = await Promise.all([api(`/api/v1/factories/${me.factory}`), api(`/api/v1/latest?factory=${me.factory}`)]);
      document.getElementById("factory-name").textContent = factoryName(f);
      document.getElementById("factory-state").replaceWith(Object.assign(stateBadge(f.state, f.state_parameters), { id: "factory-state" }));
      document.getElementById("last-update").textContent = fmtTime(f.last_update);
      document.getElementById("charts-link").href = link("/factory/" + f.id);
      document.getElementById("latest").replaceWith(Object.assign(EIT.valuesTable(f, latest), { id: "latest" }));
      await Promise.all([loadAlerts(), loadReport()]);
      document.body.dataset.loaded = "true";
    } catch (err) {
      EIT.message(EIT.explain(err));
    }
  }

  start();
})();
