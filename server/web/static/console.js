/* The officers' console: the alerts inbox, with acknowledge, assign and resolve one or two taps
 * away, comments, each alert's history, the factory's response and its notifications (those not
 * delivered marked on the alert, with their last error). */
"use strict";

(() => {
  const { t, api, el, fmtTime, fmtNum, link, factoryName, session, toast } = EIT;
  const list = document.getElementById("alerts");
  const filters = document.getElementById("filters");
  let officers = [];
  let factories = {};
  let me = null;
  const open = new Set(); // alerts whose details are shown
  let troubled = {}; // alert id -> its notifications failing or expired

  async function act(alertId, action, body) {
    try {
      await api(`/api/v1/alerts/${alertId}/${action}?lang=${EIT.lang}`, { method: "POST", body: body || {} });
      toast(t("done"));
    } catch (err) {
      toast(EIT.explain(err));
    }
    await load();
  }

  function badge(cls, text) { return el("span", { class: "badge " + cls }, text); }

  function notificationState(n) {
    if (n.state === "pending" && n.failing) return "failing";
    return n.state;
  }

  function notificationItem(n) {
    const state = notificationState(n);
    const whom = n.recipient === "*" ? t("notification_everyone") : n.recipient;
    const parts = [`${n.notifier} → ${whom} · ${n.event}`, t("notification_attempts", { n: n.attempts })];
    if (n.delivered_at) parts.push(fmtTime(n.delivered_at));
    else if (state === "failing" && n.next_attempt_at) parts.push(t("notification_next", { at: fmtTime(n.next_attempt_at) }));
    return el("li", { class: `notification ${state}`, "data-state": state, "data-notifier": n.notifier },
      badge(state === "delivered" ? "resolved" : state === "pending" ? "light" : "open", t("notification_" + state)),
      " ", parts.join(" · "),
      n.last_error && state !== "delivered" ? el("div", { class: "error" }, t("notification_last_error", { error: n.last_error })) : null);
  }

  async function details(a, box) {
    box.replaceChildren(el("p", { class: "hint" }, t("loading")));
    const [d, notes] = await Promise.all([
      api(`/api/v1/alerts/${a.id}?lang=${EIT.lang}`),
      api(`/api/v1/alerts/${a.id}/notifications`)]);
    const responses = d.responses.length
      ? d.responses.map((r) => el("div", { class: "response" },
        el("div", {}, el("strong", {}, t("cause") + ": "), r.cause),
        el("div", {}, el("strong", {}, t("corrective_action") + ": "), r.corrective_action),
        el("div", { class: "hint" }, `${r.by} · ${fmtTime(r.at)}`)))
      : [el("p", { class: "hint" }, t("no_responses"))];
    const comment = el("form", { class: "inline" },
      el("input", { name: "text", placeholder: t("comment_placeholder"), maxlength: 4000, required: true, "aria-label": t("comment") }),
      el("button", { type: "submit", class: "secondary" }, t("send")));
    comment.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = comment.elements.text.value.trim();
      if (text) act(a.id, "comments", { text });
    });
    box.replaceChildren(
      el("h4", {}, t("factory_responses")), ...responses,
      el("h4", {}, t("notifications")),
      notes.length ? el("ol", { class: "notifications" }, notes.map(notificationItem)) : el("p", { class: "hint" }, t("no_notifications")),
      el("h4", {}, t("history")),
      el("ol", { class: "audit" }, d.audit.map((e) => el("li", {}, `${fmtTime(e.at)} · ${e.actor} · ${e.action}`, e.detail ? `: ${e.detail}` : ""))),
      comment);
  }

  function card(a) {
    const f = factories[a.factory];
    const actions = el("div", { class: "actions" });
    if (a.state === "open") {
      actions.append(el("button", { type: "button", class: "ack", onclick: () => act(a.id, "acknowledge") }, t("acknowledge")));
    }
    if (a.state === "open" || a.state === "acknowledged") {
      if (a.assignee !== me.name) {
        actions.append(el("button", { type: "button", class: "secondary assign-me", onclick: () => act(a.id, "assign", { assignee: me.name }) }, t("assign_me")));
      }
      const select = el("select", { class: "assign", "aria-label": t("assign_to") },
        el("option", { value: "" }, t("assign_to")),
        officers.filter((o) => o.name !== a.assignee).map((o) => el("option", { value: o.name }, `${o.name} (${o.role})`)));
      select.addEventListener("change", () => { if (select.value) act(a.id, "assign", { assignee: select.value }); });
      actions.append(select);
      actions.append(el("button", { type: "button", class: "resolve", onclick: () => act(a.id, "resolve") }, t("resolve")));
    }
    if (a.state === "resolved" && (me.role === "supervisor" || me.role === "admin")) {
      actions.append(el("button", { type: "button", class: "secondary close", onclick: () => act(a.id, "close") }, t("close")));
    }
    const detailBox = el("div", { class: "details", hidden: !open.has(a.id) });
    const toggle = el("button", { type: "button", class: "secondary toggle" }, open.has(a.id) ? t("hide_details") : t("details"));
    toggle.addEventListener("click", async () => {
      if (open.has(a.id)) { open.delete(a.id); detailBox.hidden = true; toggle.textContent = t("details"); return; }
      open.add(a.id);
      detailBox.hidden = false;
      toggle.textContent = t("hide_details");
      await details(a, detailBox).catch((err) => detailBox.replaceChildren(el("p", { class: "error" }, EIT.explain(err))));
    });
    actions.append(toggle);
    const item = el("li", { class: `alert ${a.severity} state-${a.state}`, "data-alert-id": a.id, "data-state": a.state, "data-factory": a.factory },
      el("div", { class: "head" },
        badge(a.severity, t("severity_" + a.severity) || a.severity),
        badge(a.state, t("state_" + a.state)),
        a.provisional ? badge("light", t("provisional")) : null,
        a.retroactive ? badge("light", t("retroactive")) : null,
        troubled[a.id] ? el("span", { class: "badge open notification-trouble", title: troubled[a.id].map((n) => n.last_error).filter(Boolean)[0] || "" }, t("notification_trouble")) : null,
        el("span", { class: "where" }, `${f ? factoryName(f) : a.factory}`)),
      el("div", { class: "meta" }, `${a.device} · ${a.parameter} · ${a.rule} · #${a.id}`),
      el("p", { class: "text" }, a.text),
      el("div", { class: "meta" },
        `${t("opened")}: ${fmtTime(a.opened_at)} · ${t("assignee")}: ${a.assignee || t("nobody")}`,
        a.value !== null && a.limit !== null ? ` · ${fmtNum(a.value)} / ${fmtNum(a.limit)} ${a.unit}` : ""),
      actions, detailBox);
    if (open.has(a.id)) details(a, detailBox).catch(() => {});
    return item;
  }

  async function load() {
    const q = new URLSearchParams({ lang: EIT.lang, limit: "200" });
    for (const [k, v] of new FormData(filters)) if (v) q.set(k, v);
    try {
      const [alerts, trouble] = await Promise.all([
        api("/api/v1/alerts?" + q.toString()),
        api("/api/v1/notifications?state=troubled&limit=1000")]);
      troubled = {};
      for (const n of trouble) (troubled[n.alert_id] = troubled[n.alert_id] || []).push(n);
      document.getElementById("alert-count").textContent = t("count_alerts", { n: alerts.length });
      list.replaceChildren(...(alerts.length ? alerts.map(card) : [el("li", { class: "hint" }, t("no_alerts"))]));
      document.body.dataset.loaded = "true";
    } catch (err) {
      EIT.message(EIT.explain(err));
    }
  }

  async function start() {
    const s = session.get();
    if (!s) {
      EIT.message(t("need_login"));
      document.getElementById("message").append(" ", el("a", { href: link("/login", { next: "/console" }) }, t("login")));
      return;
    }
    me = s.user;
    if (me.role === "operator") {
      EIT.message(t("not_allowed", { detail: me.role }));
      return;
    }
    document.getElementById("console").hidden = false;
    try {
      const [offs, facs] = await Promise.all([api("/api/v1/officers"), api("/api/v1/factories")]);
      officers = offs;
      factories = Object.fromEntries(facs.map((f) => [f.id, f]));
      filters.elements.factory.append(...facs.map((f) => el("option", { value: f.id }, factoryName(f))));
    } catch (err) {
      EIT.message(EIT.explain(err));
      return;
    }
    filters.addEventListener("change", load);
    document.getElementById("refresh").addEventListener("click", load);
    await load();
    setInterval(() => { if (!list.contains(document.activeElement)) load(); }, 30000);
  }

  start();
})();
