/* The officers' console: the inbox of cases, searched, filtered and read a page at a time.
 *
 * Each card holds what an officer acts on: the factory (a link to its chart at the case's period),
 * the current value against the limit, the condition as the rules see it (a case resolved while its
 * condition persists says "still ongoing"), the factory's answer, the resolution and the previous
 * case. Acknowledge, assign to me and a note are a tap each (a note: tap, type, send); resolve is a
 * tap and a quick reason (or a reason of one's own). Every action is confirmed (a toast) and the
 * card shows the case as the server now has it. The details: exceedances, every answer, the
 * notifications and the history. */
"use strict";

(() => {
  const { t, api, apiPage, el, fmtTime, fmtNum, link, factoryName, session, toast } = EIT;
  const PAGE = 25;
  const HOUR_MS = 3600e3;
  const REASONS = ["reason_fixed", "reason_instrument", "reason_inspected", "reason_duplicate"];
  const list = document.getElementById("alerts");
  const filters = document.getElementById("filters");
  const moreButton = document.getElementById("more");
  const singleCase = new URLSearchParams(location.search).get("case");
  let factories = {};
  let me = null;
  let shown = []; // the cases on screen, in order
  let next = null; // the next page's path (the Link header), or null
  let total = null; // how many cases the filters select
  let loads = 0; // only the newest load renders
  const open = new Set(); // cases whose details are shown
  let troubled = {}; // case id -> its notifications failing or expired
  const officersOf = new Map(); // factory -> promise of the officers for its cases
  const officerNames = {}; // account -> the registry officer's name

  function badge(cls, text) { return el("span", { class: "badge " + cls }, text); }

  function officersFor(factory) {
    if (!officersOf.has(factory)) {
      officersOf.set(factory, api(`/api/v1/officers?factory=${encodeURIComponent(factory)}`).then((found) => {
        for (const o of found) if (o.officer_name) officerNames[o.name] = o.officer_name;
        return found;
      }).catch(() => { officersOf.delete(factory); return []; }));
    }
    return officersOf.get(factory);
  }

  function who(account) {
    if (!account) return t("nobody");
    return officerNames[account] ? `${officerNames[account]} (${account})` : account;
  }

  function replace(a) {
    const i = shown.findIndex((x) => x.id === a.id);
    if (i >= 0) shown[i] = a;
    const old = list.querySelector(`li.alert[data-alert-id="${a.id}"]`);
    if (old) old.replaceWith(card(a));
  }

  /** An audit action in the page's language ("condition ended" is audit_condition_ended). */
  function auditAction(action) {
    const key = "audit_" + action.replace(/ /g, "_");
    const word = t(key);
    return word === key ? action : word;
  }

  async function act(a, action, body, said) {
    try {
      const updated = await api(`/api/v1/alerts/${a.id}/${action}?lang=${EIT.lang}`, { method: "POST", body: body || {} });
      replace(updated);
      toast(said(updated));
    } catch (err) {
      toast(EIT.explain(err));
    }
  }

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

  function exceedanceItem(x) {
    const status = x.provisional
      ? (x.outcome ? t("exceedance_" + x.outcome) : t("provisional"))
      : (x.retroactive ? t("retroactive") : t("exceedance_closed"));
    return el("li", { class: "exceedance", "data-id": x.id, "data-outcome": x.outcome || "", "data-provisional": String(x.provisional) },
      el("div", {}, el("strong", {}, `${fmtNum(x.average)} ${x.unit}`), ` / ${t("limit")} ${fmtNum(x.limit)} ${x.unit} · ${x.averaging} · `, badge("light", status)),
      el("div", { class: "hint" }, `${fmtTime(x.period_start)} – ${fmtTime(x.period_end)} · ${x.basis} · ${x.method}`));
  }

  function responseItem(r) {
    return el("div", { class: "response" },
      el("div", {}, el("strong", {}, t("cause") + ": "), r.cause),
      el("div", {}, el("strong", {}, t("corrective_action") + ": "), r.corrective_action),
      el("div", { class: "hint" }, `${r.by} · ${fmtTime(r.at)}`));
  }

  async function details(a, box) {
    box.replaceChildren(el("p", { class: "hint" }, t("loading")));
    const [d, notes, records] = await Promise.all([
      api(`/api/v1/alerts/${a.id}?lang=${EIT.lang}`),
      api(`/api/v1/alerts/${a.id}/notifications`),
      api(`/api/v1/alerts/${a.id}/exceedances`)]);
    box.replaceChildren(
      el("h4", {}, t("exceedances")),
      records.length ? el("ol", { class: "exceedances" }, records.map(exceedanceItem)) : el("p", { class: "hint" }, t("no_exceedances")),
      el("h4", {}, t("factory_responses")),
      ...(d.responses.length ? d.responses.map(responseItem) : [el("p", { class: "hint" }, t("no_responses"))]),
      el("h4", {}, t("notifications")),
      notes.length ? el("ol", { class: "notifications" }, notes.map(notificationItem)) : el("p", { class: "hint" }, t("no_notifications")),
      el("h4", {}, t("history")),
      el("ol", { class: "audit" }, d.audit.map((e) => el("li", { "data-action": e.action },
        `${fmtTime(e.at)} · ${e.actor} · ${auditAction(e.action)}`,
        e.detail ? `: ${e.detail}` : ""))));
  }

  /** The factory page at the case's period: from six hours before its first period to two hours
   * after its condition ended (or now), with the case's channel in view. */
  function chartLink(a) {
    const first = Math.min(...[a.period_start, a.opened_at].filter(Boolean).map(Date.parse));
    const params = { start: new Date(first - 6 * HOUR_MS).toISOString() };
    if (a.ended_at && Date.parse(a.ended_at) + 2 * HOUR_MS < Date.now()) {
      params.end = new Date(Date.parse(a.ended_at) + 2 * HOUR_MS).toISOString();
    }
    params.focus = a.parameter && a.parameter !== "*" ? `${a.device}/${a.parameter}` : a.device;
    return link("/factory/" + a.factory, params);
  }

  function reading(a) {
    const value = a.current_value !== null && a.current_value !== undefined ? a.current_value : a.value;
    if (value === null || value === undefined) return null;
    return el("div", { class: "reading" },
      el("span", { class: "label" }, t("current_value")), " ",
      el("strong", { class: "current" }, `${fmtNum(value)} ${a.unit}`),
      a.limit !== null ? el("span", { class: "limit" }, ` · ${t("limit")} ${fmtNum(a.limit)} ${a.unit}`) : null,
      a.current_at ? el("span", { class: "hint" }, ` · ${fmtTime(a.current_at)}`) : null);
  }

  function answer(a) {
    const last = a.responses.length ? a.responses[a.responses.length - 1] : null;
    if (!last) return el("p", { class: "answer none hint" }, t("no_responses"));
    return el("div", { class: "answer" },
      el("strong", {}, t("factory_answer") + ": "),
      el("span", { class: "cause" }, `${t("cause")}: ${last.cause}`), " · ",
      el("span", { class: "corrective" }, `${t("corrective_action")}: ${last.corrective_action}`),
      el("span", { class: "hint" }, ` (${last.by}, ${fmtTime(last.at)})`),
      a.responses.length > 1 ? el("span", { class: "hint" }, " · " + t("earlier_answers", { n: a.responses.length - 1 })) : null);
  }

  function assignSelect(a) {
    const select = el("select", { class: "assign", "aria-label": t("assign_to") }, el("option", { value: "" }, t("assign_to")));
    officersFor(a.factory).then((found) => {
      const option = (o) => el("option", { value: o.name, "data-on-duty": String(!!o.on_duty) },
        (o.officer_name ? `${o.officer_name} · ${o.name}` : `${o.name} (${o.role})`) + (o.name === a.assignee ? " ✓" : ""));
      const duty = found.filter((o) => o.on_duty);
      const others = found.filter((o) => !o.on_duty);
      if (duty.length) select.append(el("optgroup", { label: t("on_duty") }, duty.map(option)));
      if (others.length) select.append(el("optgroup", { label: t("other_officers") }, others.map(option)));
    });
    select.addEventListener("change", () => {
      const chosen = select.value;
      if (chosen) act(a, "assign", { assignee: chosen }, () => t("assigned_toast", { id: a.id, who: who(chosen) }));
    });
    return select;
  }

  function noteForm(a) {
    const form = el("form", { class: "inline note-form", hidden: true },
      el("input", { name: "text", placeholder: t("note_placeholder_case"), maxlength: 4000, required: true, "aria-label": t("note") }),
      el("button", { type: "submit", class: "send-note" }, t("add_note")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = form.elements.text.value.trim();
      if (text) act(a, "comments", { text }, () => t("note_added", { id: a.id }));
    });
    return form;
  }

  function resolvePanel(a) {
    const resolved = (updated) => t(updated.condition === "ongoing" ? "resolved_ongoing_toast" : "resolved_toast", { id: a.id });
    const custom = el("form", { class: "inline resolve-form" },
      el("input", { name: "reason", placeholder: t("resolve_reason_placeholder"), maxlength: 4000, required: true, "aria-label": t("resolve_reason") }),
      el("button", { type: "submit", class: "danger" }, t("resolve_with_reason")));
    custom.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const reason = custom.elements.reason.value.trim();
      if (reason) act(a, "resolve", { reason }, resolved);
    });
    return el("div", { class: "resolve-panel", hidden: true },
      el("p", { class: "label" }, t("resolve_reason")),
      el("div", { class: "reasons" }, REASONS.map((key) => el("button", {
        type: "button", class: "secondary reason", "data-reason": key,
        onclick: () => act(a, "resolve", { reason: t(key) }, resolved),
      }, t(key)))),
      custom);
  }

  function card(a) {
    const f = factories[a.factory];
    const active = a.state === "open" || a.state === "acknowledged";
    const stillOngoing = a.condition === "ongoing" && !active;
    const supervisor = me.role === "supervisor" || me.role === "admin";
    const notes = noteForm(a);
    const panel = active ? resolvePanel(a) : null;
    const show = (which) => {
      for (const p of [notes, panel]) if (p) p.hidden = p !== which || !p.hidden;
      if (which === notes && !notes.hidden) notes.elements.text.focus();
    };
    const actions = el("div", { class: "actions" });
    if (a.state === "open") {
      actions.append(el("button", { type: "button", class: "ack", onclick: () => act(a, "acknowledge", {}, () => t("acknowledged_toast", { id: a.id })) }, t("acknowledge")));
    }
    if (active && a.assignee !== me.name) {
      actions.append(el("button", { type: "button", class: "secondary assign-me", onclick: () => act(a, "assign", { assignee: me.name }, () => t("assigned_toast", { id: a.id, who: who(me.name) })) }, t("assign_me")));
    }
    if (a.state !== "closed") actions.append(assignSelect(a));
    actions.append(el("button", { type: "button", class: "secondary note", onclick: () => show(notes) }, t("note")));
    if (active) actions.append(el("button", { type: "button", class: "resolve", onclick: () => show(panel) }, t("resolve")));
    if (a.state === "resolved" && supervisor && a.condition === "ended") {
      actions.append(el("button", { type: "button", class: "secondary close", onclick: () => act(a, "close", {}, () => t("closed_toast", { id: a.id })) }, t("close")));
    }
    const detailBox = el("div", { class: "details", hidden: !open.has(a.id) });
    const toggle = el("button", { type: "button", class: "secondary toggle", "aria-expanded": String(open.has(a.id)) }, open.has(a.id) ? t("hide_details") : t("details"));
    toggle.addEventListener("click", async () => {
      if (open.has(a.id)) {
        open.delete(a.id);
        detailBox.hidden = true;
        toggle.textContent = t("details");
        toggle.setAttribute("aria-expanded", "false");
        return;
      }
      open.add(a.id);
      detailBox.hidden = false;
      toggle.textContent = t("hide_details");
      toggle.setAttribute("aria-expanded", "true");
      await details(a, detailBox).catch((err) => detailBox.replaceChildren(el("p", { class: "error" }, EIT.explain(err))));
    });
    actions.append(toggle);
    const trouble = troubled[a.id];
    const item = el("li", {
      class: `alert ${a.severity} state-${a.state}` + (stillOngoing ? " still-ongoing" : ""),
      "data-alert-id": a.id, "data-state": a.state, "data-condition": a.condition, "data-factory": a.factory,
    },
    el("div", { class: "head" },
      badge(a.severity, t("severity_" + a.severity) || a.severity),
      badge(a.state, t("state_" + a.state)),
      stillOngoing
        ? badge("condition still", t("still_ongoing"))
        : badge("condition " + a.condition, t("condition_" + a.condition)),
      a.provisional ? badge("light", t("provisional")) : null,
      a.retroactive ? badge("light", t("retroactive")) : null,
      trouble ? el("span", { class: "badge open notification-trouble", title: trouble.map((n) => n.last_error).filter(Boolean)[0] || "" }, t("notification_trouble")) : null,
      el("span", { class: "case-id" }, `#${a.id}`)),
    el("h3", { class: "where" },
      el("a", { href: chartLink(a), class: "chart-link", title: t("chart_link") }, f ? factoryName(f) : a.factory),
      el("span", { class: "what" }, ` · ${a.parameter === "*" ? a.device : EIT.paramName(a.parameter)}`)),
    el("div", { class: "meta" }, `${a.device} · ${a.parameter} · ${a.rule}`),
    reading(a),
    el("p", { class: "text" }, a.text),
    answer(a),
    a.resolution ? el("p", { class: "resolution" }, el("strong", {}, t("resolution") + ": "), a.resolution) : null,
    el("div", { class: "meta" },
      `${t("opened")}: ${fmtTime(a.opened_at)} · ${t("assignee")}: `, el("span", { class: "assignee" }, who(a.assignee)),
      a.previous_id ? [" · ", el("a", { class: "previous", href: link("/console", { case: a.previous_id }) }, t("previous_case", { id: a.previous_id }))] : null),
    actions, notes, panel, detailBox);
    if (open.has(a.id)) details(a, detailBox).catch(() => {});
    return item;
  }

  function query(limit) {
    const q = new URLSearchParams({ lang: EIT.lang, limit: String(limit) });
    let chosen = 0;
    for (const [k, v] of new FormData(filters)) {
      const value = String(v).trim();
      if (!value) continue;
      q.set(k, value);
      if (k !== "q" && !(k === "state" && value === "active")) chosen += 1;
    }
    const count = document.getElementById("filter-count");
    count.hidden = chosen === 0;
    count.textContent = String(chosen);
    return q;
  }

  function pager() {
    const count = total === null ? shown.length : total;
    document.getElementById("alert-count").textContent = t("count_alerts", { n: count.toLocaleString() });
    document.getElementById("shown").textContent = shown.length ? t("showing", { shown: shown.length, total: count.toLocaleString() }) : "";
    moreButton.hidden = !next;
  }

  function setTrouble(found) {
    troubled = {};
    for (const n of found) (troubled[n.alert_id] = troubled[n.alert_id] || []).push(n);
  }

  async function load(keep = false) {
    const mine = ++loads;
    document.body.dataset.loaded = "false";
    try {
      let page;
      const trouble = api("/api/v1/notifications?state=troubled&limit=1000");
      if (singleCase) {
        page = { items: [await api(`/api/v1/alerts/${encodeURIComponent(singleCase)}?lang=${EIT.lang}`)], next: null, total: 1 };
      } else {
        const limit = keep ? Math.min(1000, Math.max(PAGE, shown.length)) : PAGE;
        page = await apiPage("/api/v1/alerts?" + query(limit).toString());
      }
      const found = await trouble;
      await Promise.all([...new Set(page.items.map((a) => a.factory))].map(officersFor));
      if (mine !== loads) return;
      setTrouble(found);
      shown = page.items;
      next = page.next;
      total = page.total;
      list.replaceChildren(...(shown.length ? shown.map(card) : [el("li", { class: "hint" }, t("no_alerts"))]));
      pager();
      EIT.message("");
    } catch (err) {
      if (mine === loads) EIT.message(EIT.explain(err));
    } finally {
      if (mine === loads) document.body.dataset.loaded = "true";
    }
  }

  async function more() {
    if (!next) return;
    moreButton.disabled = true;
    document.body.dataset.loaded = "false";
    try {
      const page = await apiPage(next);
      await Promise.all([...new Set(page.items.map((a) => a.factory))].map(officersFor));
      const seen = new Set(shown.map((a) => a.id));
      const fresh = page.items.filter((a) => !seen.has(a.id));
      shown.push(...fresh);
      next = page.next;
      total = page.total;
      list.append(...fresh.map(card));
      pager();
    } catch (err) {
      toast(EIT.explain(err));
    } finally {
      moreButton.disabled = false;
      document.body.dataset.loaded = "true";
    }
  }

  /** Something of the officer's is under way: a field in use or a panel open. */
  function busy() {
    return list.contains(document.activeElement) || filters.contains(document.activeElement)
      || !!list.querySelector(".note-form:not([hidden]), .resolve-panel:not([hidden])");
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
    const box = document.getElementById("filter-box");
    if (window.matchMedia("(min-width: 760px)").matches) box.open = true;
    if (singleCase) {
      filters.hidden = true;
      const single = document.getElementById("single");
      single.hidden = false;
      single.append(t("case_title", { id: singleCase }), " · ", el("a", { href: link("/console") }, t("back_to_inbox")));
    }
    try {
      const facs = await api("/api/v1/factories");
      factories = Object.fromEntries(facs.map((f) => [f.id, f]));
      filters.elements.factory.append(...facs.map((f) => el("option", { value: f.id }, factoryName(f))));
    } catch (err) {
      EIT.message(EIT.explain(err));
      return;
    }
    let typing;
    filters.addEventListener("change", (ev) => { if (ev.target.name !== "q") load(); });
    filters.elements.q.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load(), 300); });
    filters.addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(typing); load(); });
    document.getElementById("refresh").addEventListener("click", () => load(true));
    moreButton.addEventListener("click", more);
    await load();
    setInterval(() => { if (!busy()) load(true); }, 30000);
  }

  start();
})();
