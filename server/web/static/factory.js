/* A factory page: each channel's latest value and a chart over time against its limit (uPlot).
 * Everyone sees the clock-hour averages (or the rolling averages where the limit is on those);
 * officers and the factory's operator also see the 5-minute means of the raw readings.
 *
 * URL parameters (the console links a case to its period this way): `start` and `end` (RFC 3339;
 * `end` defaults to now) chart that period instead of the last 48 hours; `focus` (a device, or
 * device/channel) brings that device or channel into view, marked. */
"use strict";

(() => {
  const { t, api, el, fmtTime, fmtNum, stateBadge, factoryName, cfg, session } = EIT;
  const factoryId = cfg.factory;
  const charts = [];
  const asked = new URLSearchParams(location.search);
  const focus = asked.get("focus");
  // A period of the URL's own (a case's), else the last `hours`.
  let period = null;
  const askedStart = Date.parse(asked.get("start") || "");
  if (!Number.isNaN(askedStart)) {
    const askedEnd = Date.parse(asked.get("end") || "");
    const end = Number.isNaN(askedEnd) ? Date.now() : Math.min(askedEnd, Date.now());
    if (end > askedStart) period = { start: new Date(askedStart), end: new Date(end) };
  }
  let hours = 48;
  let factory = null;
  let detailed = false;

  // Axis labels in the page's language and the town's time zone: the hour, and the date at
  // the first tick of each day.
  const hourFmt = new Intl.DateTimeFormat(EIT.lang === "th" ? "th-TH" : "en-GB", { timeZone: cfg.timezone, hour: "2-digit", minute: "2-digit" });
  const dayFmt = new Intl.DateTimeFormat(EIT.lang === "th" ? "th-TH" : "en-GB", { timeZone: cfg.timezone, day: "numeric", month: "short" });
  function timeLabels(u, splits) {
    let lastDay = null;
    return splits.map((ts) => {
      const d = new Date(ts * 1000);
      const day = dayFmt.format(d);
      const label = hourFmt.format(d);
      if (day !== lastDay) { lastDay = day; return label + "\n" + day; }
      return label;
    });
  }

  function limitFor(channel, averaging) {
    return channel.limits.find((l) => l.averaging === averaging);
  }

  /** Which series the chart shows: hourly averages against the 1-hour limit; for channels whose
   * limit is on a rolling window (ambient air), that rolling average against its limit. */
  function plan(channel) {
    if (limitFor(channel, "1h") || !channel.limits.length) return { kind: "hourly", limit: limitFor(channel, "1h") };
    for (const w of ["24h", "8h"]) {
      const lim = limitFor(channel, w);
      if (lim) return { kind: "rolling", window: w, limit: lim };
    }
    return { kind: "hourly", limit: channel.limits[0] };
  }

  function merge(seriesList) {
    // uPlot wants one x array and y arrays aligned to it (null where a series has no point).
    const xs = [...new Set(seriesList.flatMap((s) => s.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = seriesList.map((s) => {
      const y = new Array(xs.length).fill(null);
      for (const [x, v] of s) y[index.get(x)] = v;
      return y;
    });
    return [xs, ...ys];
  }

  async function drawChart(card, device, channel) {
    const box = card.querySelector(".chart");
    const p = plan(channel);
    const end = period ? period.end : new Date();
    const start = period ? period.start : new Date(end.getTime() - hours * 3600e3);
    const range = `start=${encodeURIComponent(start.toISOString())}&end=${encodeURIComponent(end.toISOString())}`;
    // 5-minute means, or longer buckets over a long period (at most about 2,000 of them).
    const every = Math.max(300, Math.ceil((end - start) / 1000 / 2000 / 300) * 300);
    const base = `/api/v1/factories/${factoryId}/devices/${device.id}/channels/${channel.id}`;
    const requests = [
      p.kind === "hourly" ? api(`${base}/hourly?${range}`) : api(`${base}/rolling?window=${p.window}&${range}`),
    ];
    if (detailed) requests.push(api(`${base}/readings?${range}&every=${every}&fn=mean&valid_only=true`).catch(() => null));
    const [avg, raw] = await Promise.all(requests);
    const sec = (iso) => Date.parse(iso) / 1000;
    const avgPoints = p.kind === "hourly"
      ? avg.hours.filter((h) => h.valid && h.corrected !== null).map((h) => [sec(h.time) + 1800, h.corrected])
      : avg.points.filter((q) => q.valid).map((q) => [sec(q.time), q.value]);
    const rawPoints = raw ? raw.points.map((q) => [sec(q.time) + every / 2, q.value]) : [];
    const series = [{}];
    const data = [];
    if (rawPoints.length) {
      data.push(rawPoints);
      series.push({ label: t("chart_raw"), stroke: "#90a4ae", width: 1, spanGaps: false, points: { show: false } });
    }
    data.push(avgPoints);
    series.push({
      label: p.kind === "hourly" ? t("chart_hourly") : t("chart_rolling", { window: p.window }),
      stroke: "#0b5d7a", width: 2, spanGaps: false, points: { show: true, size: 5 },
    });
    const lim = p.limit;
    const limits = [];
    if (lim && lim.max_in_channel_unit !== null) limits.push([t("chart_limit"), lim.max_in_channel_unit]);
    if (lim && lim.min_in_channel_unit !== null) limits.push([t("chart_limit_min"), lim.min_in_channel_unit]);
    const merged = merge(data);
    const xs = merged[0];
    for (const [label, value] of limits) {
      merged.push(xs.map(() => value));
      series.push({ label, stroke: "#c62828", width: 2, dash: [8, 5], points: { show: false } });
    }
    card.dataset.points = String(avgPoints.length);
    card.dataset.rawPoints = String(rawPoints.length);
    card.dataset.limit = limits.length ? String(limits[0][1]) : "";
    box.replaceChildren();
    if (!avgPoints.length && !rawPoints.length) {
      box.append(el("p", { class: "empty" }, t("chart_no_data")));
      return;
    }
    const values = merged.slice(1).flat().filter((v) => v !== null);
    const lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    const opts = {
      width: Math.max(240, box.clientWidth),
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), cfg.timezone),
      series,
      scales: { x: { time: true, range: [start.getTime() / 1000, end.getTime() / 1000] }, y: { range: [Math.max(lo - pad, Math.min(lo, 0)), hi + pad] } },
      axes: [{ values: timeLabels, space: 60 }, { label: channel.unit, size: 60 }],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    const chart = new uPlot(opts, merged, box);
    charts.push({ chart, box });
    card.dataset.drawn = "true";
  }

  function channelCard(device, channel, latest) {
    const now = latest ? el("span", { class: "now" + (latest.flag === "N" ? "" : " flagged") }, fmtNum(latest.value), " ", channel.unit) : el("span", { class: "hint" }, t("no_values"));
    const p = plan(channel);
    const lim = p.limit;
    const limText = lim
      ? `${t("chart_limit")} (${lim.averaging}): ${[lim.min, lim.max].filter((v) => v !== null).map(fmtNum).join("–")} ${lim.unit} · ${lim.origin}`
      : t("chart_no_limit");
    const focused = focus === `${device.id}/${channel.id}` || focus === device.id;
    return el("article", { class: "chart-card" + (focused ? " focus" : ""), "data-channel": `${device.id}/${channel.id}`, "data-focus": String(focused) },
      el("header", {}, el("h3", {}, channel.id), now),
      el("p", { class: "hint" }, limText),
      el("div", { class: "chart" }, el("p", { class: "empty" }, t("loading"))));
  }

  async function load() {
    try {
      factory = await api(`/api/v1/factories/${factoryId}`);
    } catch (err) {
      EIT.message(EIT.explain(err));
      document.getElementById("factory-name").textContent = factoryId;
      return;
    }
    document.getElementById("factory-status").hidden = false;
    document.getElementById("charts").hidden = false;
    const s = session.get();
    detailed = !!(s && (s.user.role !== "operator" || s.user.factory === factoryId));
    document.title = `${factoryName(factory)} · ${t("app_title")}`;
    document.getElementById("factory-name").textContent = factoryName(factory);
    document.getElementById("factory-meta").textContent = [
      EIT.lang === "th" ? factory.name : factory.name_th,
      factory.diw_registration && `${t("diw_registration")} ${factory.diw_registration}`,
      factory.district && `${t("district")} ${factory.district}`,
      factory.estate,
    ].filter(Boolean).join(" · ");
    document.getElementById("factory-state").replaceWith(Object.assign(stateBadge(factory.state), { id: "factory-state" }));
    document.getElementById("last-update").textContent = fmtTime(factory.last_update);
    const latest = await api(`/api/v1/latest?factory=${factoryId}`);
    const byKey = Object.fromEntries(latest.map((r) => [`${r.device}/${r.channel}`, r]));
    const box = document.getElementById("devices");
    box.replaceChildren();
    const jobs = [];
    for (const device of factory.devices) {
      const grid = el("div", { class: "charts" });
      box.append(el("section", { class: "device", "data-device": device.id },
        el("h3", {}, `${device.name} · ${t("kind_" + device.kind)}`), grid));
      for (const channel of device.channels) {
        const card = channelCard(device, channel, byKey[`${device.id}/${channel.id}`]);
        grid.append(card);
        if (device.kind !== "energy") jobs.push(() => drawChart(card, device, channel).catch((err) => {
          card.querySelector(".chart").replaceChildren(el("p", { class: "empty error" }, EIT.explain(err)));
        }));
        else card.querySelector(".chart").remove();
      }
    }
    charts.length = 0;
    await Promise.all(jobs.map((job) => job()));
    const marked = box.querySelector(".chart-card.focus");
    if (marked) marked.scrollIntoView({ block: "center" });
    document.body.dataset.loaded = "true";
  }

  function showPeriod() {
    const note = document.getElementById("period");
    for (const o of document.querySelectorAll(".segmented button")) o.setAttribute("aria-pressed", String(!period && Number(o.dataset.hours) === hours));
    note.hidden = !period;
    if (period) note.textContent = `${t("range_case")}: ${fmtTime(period.start.toISOString())} – ${fmtTime(period.end.toISOString())}`;
  }

  for (const b of document.querySelectorAll(".segmented button")) {
    b.addEventListener("click", () => {
      hours = Number(b.dataset.hours);
      period = null;
      showPeriod();
      document.body.dataset.loaded = "false";
      load();
    });
  }
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const { chart, box } of charts) chart.setSize({ width: Math.max(240, box.clientWidth), height: 220 });
    }, 150);
  });
  // The share of the factory's readings signed at the meter and verified (docs/signing.md).
  const VERIFIED_DAYS = 30;
  async function loadVerified() {
    const line = document.getElementById("factory-verified");
    try {
      const v = await api(`/api/v1/factories/${factoryId}/verification?days=${VERIFIED_DAYS}`);
      line.textContent = v.verified_share === null
        ? t("verified_share_none", { days: VERIFIED_DAYS })
        : t("verified_share", { days: VERIFIED_DAYS, share: `${fmtNum(v.verified_share * 100)} %` });
      line.hidden = false;
    } catch (err) {
      line.hidden = true;  // the charts' own message tells why the factory did not load
    }
  }
  showPeriod();
  load();
  loadVerified();
})();
