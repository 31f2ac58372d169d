/* EIT Monitor pages: what every page shares. Plain JavaScript, no build step.
 * The page's configuration (language, words, time zone) is a JSON block the server writes. */
"use strict";

const EIT = (() => {
  const cfg = JSON.parse(document.getElementById("eit-config").textContent);
  const lang = cfg.lang;
  const SESSION_KEY = "eit.session";

  function t(key, vars) {
    let s = cfg.strings[key];
    if (s === undefined) s = key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  const session = {
    get() {
      try {
        const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
        if (!s || !s.token || Date.parse(s.expires_at) <= Date.now()) return null;
        return s;
      } catch (e) {
        return null;
      }
    },
    set(tokenAnswer) {
      localStorage.setItem(SESSION_KEY, JSON.stringify({
        token: tokenAnswer.access_token, expires_at: tokenAnswer.expires_at, user: tokenAnswer.user,
      }));
    },
    clear() { localStorage.removeItem(SESSION_KEY); },
  };

  class ApiError extends Error {
    constructor(status, detail, retryAfter) {
      super(detail); this.status = status; this.detail = detail; this.retryAfter = retryAfter || null;
    }
  }

  async function request(path, opts = {}) {
    const headers = { Accept: "application/json" };
    const s = session.get();
    if (s && opts.auth !== false) headers.Authorization = "Bearer " + s.token;
    let body;
    if (opts.form) {
      body = new URLSearchParams(opts.form);
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["Content-Type"] = "application/json";
    }
    const r = await fetch(path, { method: opts.method || "GET", headers, body });
    if (r.status === 401 && s) { session.clear(); renderUserBar(); }
    if (r.status === 204) return { response: r, data: null };
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) throw new ApiError(r.status, (data && data.detail) || r.statusText, r.headers.get("retry-after"));
    return { response: r, data };
  }

  async function api(path, opts = {}) {
    return (await request(path, opts)).data;
  }

  /** A page of a paged list: its items, the path of the next page (from the Link header, or null)
   * and how many items the query selects over every page (X-Total-Count, or null). */
  async function apiPage(path, opts = {}) {
    const { response, data } = await request(path, opts);
    const next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("link") || "");
    const total = response.headers.get("x-total-count");
    return { items: data, next: next ? next[1] : null, total: total === null ? null : Number(total) };
  }

  /** Build an element: el("a", {href: "/x", class: "y"}, "text", child). Text is never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const isSvg = ["svg", "g", "circle", "line", "text", "rect", "path", "title", "polygon"].includes(tag)
      || (tag === "a" && attrs && attrs.svg);
    const node = isSvg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false || k === "svg") continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const locale = lang === "th" ? "th-TH" : "en-GB";
  function fmtTime(iso) {
    if (!iso) return t("never");
    return new Date(iso).toLocaleString(locale, { timeZone: cfg.timezone, dateStyle: "medium", timeStyle: "short" });
  }
  function fmtNum(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 3;
    return v.toLocaleString(locale, { maximumFractionDigits: digits });
  }
  function link(path, params) {
    const q = new URLSearchParams(params || {});
    q.set("lang", lang);
    return path + "?" + q.toString();
  }
  // Display words from the glossary (eit/glossary.yaml): parameter names, unit symbols, the basis
  // of a value, invalid hours' reasons, the time zone. Ids and units stay ASCII in the data.
  const glossary = cfg.glossary || { parameters: {}, units: {}, bases: {}, reasons: [], timezones: {} };
  function paramName(id) { const p = glossary.parameters[id]; return p ? p[lang] : id; }
  function paramSymbol(id) { const p = glossary.parameters[id]; return p ? p.symbol : id; }
  function unitSymbol(u) { const s = glossary.units[u]; return s === undefined ? u : (s || u); }
  function basisLabel(unit, o2ref) {
    const b = glossary.bases[o2ref === null || o2ref === undefined ? "measured" : "corrected"];
    return b ? b[lang].replace("{unit}", unitSymbol(unit)).replace("{o2}", String(o2ref)) : unit;
  }
  function reasonText(reason) {
    if (lang !== "th" || !reason) return reason;
    const one = (part) => {
      for (const r of glossary.reasons) {
        const m = new RegExp("^(?:" + r.pattern + ")$").exec(part);
        if (m) return r.th.replace(/\{(\d)\}/g, (_, i) => m[Number(i)] || "");
      }
      return part;
    };
    const m = /^(.*?) \(left out: (.*)\)$/.exec(reason);
    if (!m) return one(reason);
    return `${one(m[1])} (ตัดออก: ${m[2].split(", ").map(one).join(", ")})`;
  }
  function tzLabel() { const z = glossary.timezones[cfg.timezone]; return z ? z[lang] : cfg.timezone; }
  /** A calendar day (YYYY-MM-DD) in the page's language: Buddhist-era years in Thai. */
  function fmtDay(day) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d, 12)).toLocaleDateString(locale, { timeZone: "UTC", dateStyle: "medium" });
  }

  /** The public state as a badge, naming the parameters behind it ("Exceeding a limit: SO₂"). */
  function stateBadge(state, parameters) {
    const named = (parameters || []).map(paramSymbol).join(", ");
    return el("span", { class: "badge " + state, "data-state": state, "data-parameters": (parameters || []).join(",") },
      t("state_" + state) + (named ? `: ${named}` : ""));
  }
  function factoryName(f) { return (lang === "th" && f.name_th) ? f.name_th : f.name; }

  /** The latest values of a factory with each channel's limit (the shortest averaging in force) and
   * the values above it highlighted: a reading above a limit is a warning sign, not yet a legal
   * exceedance (that is the hour's or window's average). */
  function valuesTable(factory, latest) {
    const channels = {};
    for (const d of factory.devices) for (const ch of d.channels) channels[`${d.id}/${ch.id}`] = ch;
    const order = ["instant", "1h", "8h", "24h"];
    const rows = latest.map((r) => {
      const ch = channels[`${r.device}/${r.channel}`] || { parameter: r.channel, limits: [] };
      const lim = [...ch.limits].sort((a, b) => order.indexOf(a.averaging) - order.indexOf(b.averaging))[0];
      const max = lim ? lim.max_in_channel_unit : null;
      const min = lim ? lim.min_in_channel_unit : null;
      const above = (max !== null && max !== undefined && r.value > max) || (min !== null && min !== undefined && r.value < min);
      const limitText = lim ? `${[min, max].filter((v) => v !== null && v !== undefined).map(fmtNum).join("–")} ${unitSymbol(r.unit)} (${lim.averaging})` : "–";
      return el("tr", { "data-channel": `${r.device}/${r.channel}`, class: above ? "exceeds" : null, "data-above": String(above) },
        el("th", { scope: "row" }, paramName(ch.parameter)),
        el("td", { class: "num" + (r.flag === "N" ? "" : " flagged") }, fmtNum(r.value), " ", unitSymbol(r.unit), above ? ` ▲ ${t("above_limit")}` : ""),
        el("td", { class: "num limit-cell" }, limitText),
        el("td", { class: "hint" }, fmtTime(r.time)));
    });
    return el("table", { class: "values" },
      el("thead", {}, el("tr", {}, ...["parameter", "value", "chart_limit", "time"].map((k) => el("th", { scope: "col" }, t(k))))),
      el("tbody", {}, rows));
  }

  function toast(text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 3000);
  }

  function message(text) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  function explain(err) {
    if (err.status === 401) return t("need_login");
    if (err.status === 403) return t("not_allowed", { detail: err.detail });
    if (err.status === 404) return t("not_found", { detail: err.detail });
    return t("error_loading", { detail: err.detail || err.message });
  }

  function renderUserBar() {
    const bar = document.getElementById("userbar");
    const s = session.get();
    bar.replaceChildren();
    const role = s ? s.user.role : null;
    for (const a of document.querySelectorAll(".nav a[data-role]")) {
      const wanted = a.dataset.role;
      // "user" and "any": any account (its notification preferences, the reports).
      const mine = wanted === "user" || wanted === "any" || (wanted === "operator" ? role === "operator" : role !== "operator");
      a.hidden = !(role && mine);
    }
    if (!s) {
      bar.append(el("a", { href: link("/login", { next: location.pathname }) }, t("login")));
      return;
    }
    bar.append(
      el("span", { id: "whoami" }, t("logged_in_as", { name: s.user.name, role: s.user.role })),
      el("button", {
        type: "button", id: "logout",
        onclick: async () => {
          try { await api("/api/v1/logout", { method: "POST" }); } catch (e) { /* the token may be gone already */ }
          session.clear();
          location.href = link("/");
        },
      }, t("logout")),
    );
  }

  document.addEventListener("DOMContentLoaded", renderUserBar);

  return {
    cfg, lang, t, api, apiPage, ApiError, session, el, fmtTime, fmtNum, link, stateBadge, factoryName, toast, message, explain,
    renderUserBar, paramName, paramSymbol, unitSymbol, basisLabel, reasonText, tzLabel, fmtDay, locale, valuesTable,
  };
})();
