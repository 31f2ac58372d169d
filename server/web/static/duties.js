/* Duties of WPMS and CEMS monitors, and the officers' integrity findings.
 * On the operator's page: the factory's notices, filing a malfunction or a planned shutdown, a lab
 * check of online BOD/COD against a grab sample (with its PDF report), and the checks due this
 * month. On the console: every factory's notices, shutdown windows to accept or reject, and the
 * integrity findings with a disposition (confirmed, dismissed, inspect): officers only. */
"use strict";

(() => {
  const { t, api, el, fmtTime, session, toast } = EIT;
  const duties = document.getElementById("duties");
  const integrity = document.getElementById("integrity");
  const windows = document.getElementById("factory-shutdowns");

  // A factory's page (anyone who may see it): the planned shutdowns an officer accepted.
  if (windows) {
    const id = decodeURIComponent(location.pathname.split("/").pop());
    api(`/api/v1/factories/${encodeURIComponent(id)}/shutdowns`).then((found) => {
      windows.replaceChildren(el("h2", {}, t("duties_shutdown_windows")),
        el("ul", {}, found.map((w) => el("li", { "data-device": w.device },
          t("duties_shutdown_window", { device: w.device, start: fmtTime(w.start), end: fmtTime(w.end) })))));
      windows.hidden = found.length === 0;
      document.body.dataset.shutdownsLoaded = "true";
    }).catch(() => { document.body.dataset.shutdownsLoaded = "true"; });
  }

  const s = session.get();
  if (!s || (!duties && !integrity)) return;
  const me = s.user;
  const officer = me.role !== "operator";
  const SYSTEM_OF_KIND = { effluent: "wpms", stack: "cems" };

  function localToIso(value) { return value ? new Date(value).toISOString() : null; }

  async function upload(file, factory) {
    // The report itself is the request body (a PDF, size-limited by the server).
    const r = await fetch(`/api/v1/duties/attachments?factory=${encodeURIComponent(factory)}&filename=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { Authorization: "Bearer " + s.token, "Content-Type": "application/pdf", Accept: "application/json" },
      body: file,
    });
    const data = await r.json();
    if (!r.ok) throw new EIT.ApiError(r.status, data.detail || r.statusText);
    return data;
  }

  function noticeItem(n) {
    const due = [];
    if (n.report_due) due.push(`${t("duties_report_due")}: ${fmtTime(n.report_due)}${n.reported_late ? " (" + t("duties_late") + ")" : ""}`);
    if (n.fix_due) due.push(`${t("duties_fix_due")}: ${fmtTime(n.fix_due)}`);
    const actions = [];
    if (!officer && n.system === "cems" && n.kind === "malfunction") actions.push(stackTestForm(n));
    if (officer && n.kind === "shutdown" && n.state === "filed") {
      for (const [verb, label] of [["accept", "duties_accept"], ["reject", "duties_reject"]]) {
        actions.push(el("button", {
          type: "button", class: verb === "accept" ? "" : "secondary", "data-action": verb,
          onclick: async () => {
            try {
              await api(`/api/v1/duties/notices/${n.id}/${verb}`, { method: "POST", body: { note: "" } });
              toast(t("duties_decided"));
              await loadNotices();
            } catch (err) { toast(EIT.explain(err)); }
          },
        }, t(label)));
      }
    }
    return el("li", { class: "duty-item", "data-notice-id": n.id, "data-state": n.state },
      el("div", { class: "head" },
        el("span", { class: "badge" }, n.system.toUpperCase()),
        el("span", { class: "badge " + n.state }, t("duties_state_" + n.state)),
        el("span", { class: "where" }, `${n.factory} · ${n.device}`)),
      el("p", { class: "text" }, `${t("duties_kind_" + n.kind)} (${t("duties_origin_" + n.origin)}): ${fmtTime(n.start)}${n.end ? " – " + fmtTime(n.end) : ""}${n.cause ? " · " + n.cause : ""}`),
      due.length ? el("div", { class: "meta" }, due.join(" · ")) : null,
      actions.length ? el("div", { class: "actions" }, actions) : null);
  }

  function stackTestForm(n) {
    // The substitute stack test of a CEMS malfunction: results per channel, with its PDF report.
    const form = el("form", { class: "stack stack-test-form" },
      el("label", {}, t("duties_test_tested"), el("input", { type: "datetime-local", name: "tested", required: true })),
      el("label", {}, t("duties_test_results"), el("input", { type: "text", name: "results", required: true, placeholder: "so2=41.5, nox=120" })),
      el("label", {}, t("duties_lab_laboratory"), el("input", { type: "text", name: "laboratory", maxlength: 200 })),
      el("label", {}, t("duties_test_report"), el("input", { type: "file", name: "report", accept: "application/pdf" })),
      el("button", { type: "submit" }, t("duties_test_submit")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const results = {};
      for (const part of form.elements.results.value.split(",")) {
        const [name, value] = part.split("=").map((x) => x.trim());
        if (name && value !== undefined && value !== "") results[name] = Number(value);
      }
      try {
        const file = form.elements.report.files[0];
        const attachment = file ? await upload(file, n.factory) : null;
        await api("/api/v1/duties/stack-tests", {
          method: "POST",
          body: {
            notice_id: n.id, tested_at: localToIso(form.elements.tested.value), results,
            laboratory: form.elements.laboratory.value.trim(), attachment_id: attachment ? attachment.id : null,
          },
        });
        toast(t("duties_test_entered"));
        await loadNotices();
      } catch (err) { toast(EIT.explain(err)); }
    });
    return el("details", {}, el("summary", {}, t("duties_test_title")), form);
  }

  async function loadNotices() {
    const list = document.getElementById("duty-notices");
    const notices = await api("/api/v1/duties/notices?limit=50");
    list.replaceChildren(...(notices.length ? notices.map(noticeItem) : [el("li", { class: "hint" }, t("duties_none"))]));
  }

  function fileForm(devices) {
    const form = el("form", { class: "stack", id: "duty-file" },
      el("label", {}, t("duties_device"), el("select", { name: "device" },
        devices.map((d) => el("option", { value: d.id }, `${d.name} (${SYSTEM_OF_KIND[d.kind].toUpperCase()})`)))),
      el("label", {}, t("duties_kind"), el("select", { name: "kind" },
        el("option", { value: "malfunction" }, t("duties_kind_malfunction")),
        el("option", { value: "shutdown" }, t("duties_kind_shutdown")))),
      el("label", {}, t("duties_start"), el("input", { type: "datetime-local", name: "start", required: true })),
      el("label", {}, t("duties_end"), el("input", { type: "datetime-local", name: "end" })),
      el("label", {}, t("duties_cause"), el("textarea", { name: "cause", maxlength: 4000 })),
      el("button", { type: "submit" }, t("duties_submit")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const device = devices.find((d) => d.id === form.elements.device.value);
      const body = {
        system: SYSTEM_OF_KIND[device.kind], kind: form.elements.kind.value, factory: me.factory, device: device.id,
        start: localToIso(form.elements.start.value), end: localToIso(form.elements.end.value), cause: form.elements.cause.value.trim(),
      };
      try {
        await api("/api/v1/duties/notices", { method: "POST", body });
        toast(t("duties_filed"));
        form.reset();
        await loadNotices();
      } catch (err) { toast(EIT.explain(err)); }
    });
    return form;
  }

  function labForm(devices) {
    const form = el("form", { class: "stack", id: "duty-lab" },
      el("label", {}, t("duties_device"), el("select", { name: "device" }, devices.map((d) => el("option", { value: d.id }, d.name)))),
      el("label", {}, t("duties_lab_channel"), el("select", { name: "channel" },
        el("option", { value: "bod" }, "BOD"), el("option", { value: "cod" }, "COD"))),
      el("label", {}, t("duties_lab_sampled"), el("input", { type: "datetime-local", name: "sampled", required: true })),
      el("label", {}, t("duties_lab_value"), el("input", { type: "number", name: "lab_value", min: 0, step: "any", required: true })),
      el("label", {}, t("duties_lab_laboratory"), el("input", { type: "text", name: "laboratory", maxlength: 200 })),
      el("label", {}, t("duties_lab_report"), el("input", { type: "file", name: "report", accept: "application/pdf" })),
      el("button", { type: "submit" }, t("duties_lab_submit")),
      el("p", { class: "hint", id: "duty-lab-result" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const file = form.elements.report.files[0];
        const attachment = file ? await upload(file, me.factory) : null;
        const check = await api("/api/v1/duties/lab-checks", {
          method: "POST",
          body: {
            factory: me.factory, device: form.elements.device.value, channel: form.elements.channel.value,
            sampled_at: localToIso(form.elements.sampled.value), lab_value: Number(form.elements.lab_value.value),
            laboratory: form.elements.laboratory.value.trim(), attachment_id: attachment ? attachment.id : null,
          },
        });
        const text = t("duties_lab_entered", { m: check.online_value ?? "–", t: check.lab_value, e: check.deviation ?? "–" });
        document.getElementById("duty-lab-result").textContent = text;
        toast(text);
        await loadReminders();
      } catch (err) { toast(EIT.explain(err)); }
    });
    return form;
  }

  async function loadReminders() {
    const box = document.getElementById("duty-reminders");
    const due = await api("/api/v1/duties/reminders");
    box.replaceChildren(...due.map((r) => el("li", {}, `${r.factory}/${r.device}: ${t("duties_reminder", { channel: r.channel.toUpperCase(), due: r.sample_by })}`)));
    box.hidden = due.length === 0;
  }

  /** The finding's month, days across and hours down (UTC), a mark at each hour its evidence
   * names: the report's chart of the same, drawn here. */
  function evidenceChart(f) {
    const [year, month] = f.month.split("-").map(Number);
    const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const cell = 8;
    const marks = (f.hours || []).map((h) => new Date(h))
      .filter((d) => d.getUTCFullYear() === year && d.getUTCMonth() + 1 === month)
      .map((d) => el("rect", { x: (d.getUTCDate() - 1) * cell, y: d.getUTCHours() * 2, width: cell - 1, height: 2, class: "mark" }));
    const label = `${f.kind}: ${marks.length} h, ${f.month}`;
    return el("svg", { class: "evidence", role: "img", "aria-label": label, viewBox: `0 0 ${days * cell} 48`, width: days * cell, height: 48 },
      el("title", {}, label),
      el("rect", { width: days * cell, height: 48, fill: "#f4f6f8" }),
      el("g", { fill: "#b00" }, marks));
  }

  function findingItem(f) {
    const explanation = EIT.lang === "th" ? f.explanation.th : f.explanation.en;
    const current = f.disposition ? t("integrity_" + f.disposition) : t("integrity_undecided");
    const buttons = ["confirmed", "dismissed", "inspect"].map((d) => el("button", {
      type: "button", class: f.disposition === d ? "" : "secondary", "data-disposition": d,
      onclick: async () => {
        try {
          await api(`/api/v1/integrity/findings/${f.id}/disposition`, { method: "POST", body: { disposition: d, note: "" } });
          toast(t("integrity_saved"));
          await loadIntegrity();
        } catch (err) { toast(EIT.explain(err)); }
      },
    }, t("integrity_" + d)));
    return el("li", { class: "finding-item", "data-finding-id": f.id, "data-disposition": f.disposition || "" },
      el("div", { class: "head" },
        el("span", { class: "badge warning" }, f.kind),
        el("span", { class: "where" }, `${f.factory} · ${f.device}${f.channel ? " · " + f.channel : ""} · ${f.month}`)),
      el("p", { class: "text" }, explanation),
      evidenceChart(f),
      el("div", { class: "meta" }, `${t("integrity_disposition")}: ${current}${f.disposed_by ? " (" + f.disposed_by + ")" : ""}`),
      el("div", { class: "actions" }, buttons));
  }

  async function loadIntegrity() {
    const list = document.getElementById("integrity-findings");
    const found = await api("/api/v1/integrity/findings");
    list.replaceChildren(...(found.length ? found.map(findingItem) : [el("li", { class: "hint" }, t("integrity_none"))]));
  }

  async function start() {
    try {
      if (duties) {
        duties.replaceChildren(
          el("h2", {}, t("duties_title")),
          el("ul", { id: "duty-reminders", class: "hint", hidden: true }),
          el("h3", {}, t("duties_notices")),
          el("ol", { id: "duty-notices", class: "alert-list" }));
        duties.hidden = false;
        if (!officer) {
          const f = await api(`/api/v1/factories/${me.factory}`);
          const monitors = f.devices.filter((d) => SYSTEM_OF_KIND[d.kind]);
          const effluent = monitors.filter((d) => d.kind === "effluent");
          if (monitors.length) duties.append(el("details", {}, el("summary", {}, t("duties_file")), fileForm(monitors)));
          if (effluent.length) duties.append(el("details", {}, el("summary", {}, t("duties_lab_title")), labForm(effluent)));
        }
        await Promise.all([loadNotices(), loadReminders()]);
      }
      if (integrity && officer) {
        integrity.replaceChildren(
          el("h2", {}, t("integrity_title")),
          el("ol", { id: "integrity-findings", class: "alert-list" }));
        integrity.hidden = false;
        await loadIntegrity();
      }
      document.body.dataset.dutiesLoaded = "true";
    } catch (err) {
      toast(EIT.explain(err));
    }
  }

  start();
})();
