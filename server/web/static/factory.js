/* A factory page: each channel's latest value and a chart over time against its limit (uPlot).
 * Everyone sees the clock-hour averages (or the rolling averages where the limit is on those);
 * officers and the factory's operator also see the 5-minute means of the raw readings.
 *
 * URL parameters (the console links a case to its period this way): `start` and `end` (RFC 3339;
 * `end` defaults to now) chart that period instead of the last 48 hours; `focus` (a device, or
 * device/channel) brings that device or channel into view, marked.
 *
 * Every clock hour of the period has its place: an hour without a valid average is a gap, listed
 * under the chart with its reason; exceeding hours are marked red; the running hour is drawn as a
 * provisional point (everyone sees it); the axes say their basis ("ppm at 7 % O2", "ppm as
 * measured"); the legend shows the values under the cursor; the view exports as CSV or XLSX. */
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

  const HOUR = 3600;

  /** Runs of consecutive hours with the same reason: [{start, end, hours, reason}]. */
  function runs(hours) {
    const out = [];
    for (const h of hours) {
      const last = out[out.length - 1];
      if (last && last.end === h.t && last.reason === h.reason) { last.end = h.t + HOUR; last.hours += 1; }
      else out.push({ start: h.t, end: h.t + HOUR, hours: 1, reason: h.reason });
    }
    return out;
  }

  async function download(path, name) {
    const s = session.get();
    const r = await fetch(path, { headers: s ? { Authorization: "Bearer " + s.token } : {} });
    if (!r.ok) throw new EIT.ApiError(r.status, r.statusText);
    const a = el("a", { href: URL.createObjectURL(await r.blob()), download: name });
    document.body.append(a);
    a.click();
    a.remove();
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
    const live = Date.now() - end.getTime() < 5 * 60e3;  // the period reaches now: show the running hour
    const requests = [
      p.kind === "hourly" ? api(`${base}/hourly?${range}`) : api(`${base}/rolling?window=${p.window}&${range}`),
      detailed ? api(`${base}/readings?${range}&every=${every}&fn=mean&valid_only=true`).catch(() => null) : null,
      p.kind === "hourly" ? api(`${base}/running`).catch(() => null) : null,
    ];
    const [avg, raw, running] = await Promise.all(requests);
    const sec = (iso) => Date.parse(iso) / 1000;
    const corrected = running && running.basis === "corrected" ? running.o2_reference_percent : null;
    const avgBasis = p.kind === "hourly" ? EIT.basisLabel(channel.unit, corrected) : EIT.basisLabel(channel.unit, null);
    const rawBasis = EIT.basisLabel(channel.unit, null);
    const twoBases = !!raw && avgBasis !== rawBasis;

    // Every clock hour of the period, stored or not: what is not a valid average is a gap.
    const first = Math.floor(start.getTime() / 1000 / HOUR) * HOUR;
    const runningStart = running ? sec(running.start) : Math.floor(Date.now() / 1000 / HOUR) * HOUR;
    const lastClosed = Math.min(Math.floor(end.getTime() / 1000 / HOUR) * HOUR, runningStart);
    const byHour = new Map();
    if (p.kind === "hourly") for (const h of avg.hours) byHour.set(sec(h.time), h);
    else for (const q of avg.points) byHour.set(sec(q.time) - HOUR, { valid: q.valid, corrected: q.value, exceeded: q.exceeded, reason: q.valid ? "" : t("chart_window_incomplete") });
    const xs = [], avgY = [], redY = [], invalid = [];
    for (let h = first; h < lastClosed; h += HOUR) {
      const x = h + HOUR / 2;
      const stored = byHour.get(h);
      // Concentrations at their reference O2 (the basis of the limit); other channels as measured.
      const v = stored ? (corrected !== null || p.kind !== "hourly" ? stored.corrected : stored.value) : null;
      const ok = stored && stored.valid && v !== null;
      xs.push(x);
      avgY.push(ok ? v : null);
      redY.push(ok && stored.exceeded ? v : null);
      if (!ok) invalid.push({ t: h, reason: stored ? (stored.reason || t("chart_invalid")) : "no data" });
    }
    // The running hour, provisional, after the closed hours.
    const runY = xs.map(() => null);
    let runningValue = null;
    if (live && running && running.corrected !== null) {
      runningValue = running.corrected;
      xs.push(runningStart + HOUR / 2); avgY.push(null); redY.push(null); runY.push(runningValue);
    }
    const data = [xs, avgY, redY, runY];
    const avgLabel = p.kind === "hourly" ? t("chart_hourly") : t("chart_rolling", { window: p.window });
    const fmtV = (u, v) => (v === null || v === undefined ? "–" : fmtNum(v));
    const series = [
      { value: (u, ts) => (ts === null ? "–" : EIT.fmtTime(new Date(ts * 1000).toISOString())) },
      { label: `${avgLabel} (${avgBasis})`, stroke: "#0b5d7a", width: 2, spanGaps: false, points: { show: true, size: 5 }, value: fmtV, scale: "y" },
      { label: t("chart_exceeding"), stroke: "#c62828", width: 0, paths: () => null, points: { show: true, size: 10, fill: "#c62828", stroke: "#7f0000" }, value: fmtV, scale: "y" },
      { label: t("chart_running"), stroke: "#b26a00", width: 0, paths: () => null, points: { show: true, size: 11, fill: "#fff", stroke: "#b26a00", width: 3 }, value: fmtV, scale: "y" },
    ];
    // The 5-minute means (officers, the factory's operator) on their own basis: as measured.
    if (raw && raw.points.length) {
      const rawMap = new Map(raw.points.map((q) => [sec(q.time) + every / 2, q.value]));
      const allX = [...new Set([...xs, ...rawMap.keys()])].sort((a, b) => a - b);
      const at = new Map(xs.map((x, i) => [x, i]));
      const pick = (ys) => allX.map((x) => (at.has(x) ? ys[at.get(x)] : null));
      data.splice(0, data.length, allX, pick(avgY), pick(redY), pick(runY), allX.map((x) => (rawMap.has(x) ? rawMap.get(x) : null)));
      series.push({ label: `${t("chart_raw")} (${rawBasis})`, stroke: "#90a4ae", width: 1, spanGaps: true, points: { show: false }, value: fmtV, scale: twoBases ? "raw" : "y" });
    }
    const lim = p.limit;
    const limits = [];
    if (lim && lim.max_in_channel_unit !== null) limits.push([t("chart_limit"), lim.max_in_channel_unit]);
    if (lim && lim.min_in_channel_unit !== null) limits.push([t("chart_limit_min"), lim.min_in_channel_unit]);
    for (const [label, value] of limits) {
      data.push(data[0].map(() => value));
      series.push({ label: `${label} (${avgBasis})`, stroke: "#c62828", width: 2, dash: [8, 5], points: { show: false }, value: fmtV, scale: "y" });
    }
    const validCount = avgY.filter((v) => v !== null).length;
    card.dataset.points = String(validCount);
    card.dataset.rawPoints = String(raw ? raw.points.length : 0);
    card.dataset.limit = limits.length ? String(limits[0][1]) : "";
    card.dataset.exceeding = String(redY.filter((v) => v !== null).length);
    card.dataset.gaps = String(invalid.length);
    card.dataset.running = runningValue === null ? "" : String(runningValue);
    card.dataset.axis = avgBasis;
    box.replaceChildren();
    const gapsBox = card.querySelector(".gaps");
    const exportBox = card.querySelector(".exports");
    if (!validCount && runningValue === null && !(raw && raw.points.length)) {
      box.append(el("p", { class: "empty" }, t("chart_no_data")));
    }
    // The running hour in words, provisional (never a verdict).
    const now = card.querySelector(".running");
    if (now) {
      now.hidden = runningValue === null;
      if (runningValue !== null) {
        now.replaceChildren(t("chart_running_now", { value: fmtNum(runningValue), basis: avgBasis }), " ",
          el("span", { class: "badge " + (running.above_limit ? "provisional" : "light") }, running.above_limit ? t("state_provisional") : t("provisional")));
      }
    }
    // Where there is no valid average, and why.
    const gapRuns = runs(invalid);
    gapsBox.replaceChildren();
    if (gapRuns.length) {
      gapsBox.append(el("details", {},
        el("summary", {}, t("chart_gaps", { n: invalid.length })),
        el("ul", {}, gapRuns.map((r) => el("li", { "data-reason": r.reason },
          `${EIT.fmtTime(new Date(r.start * 1000).toISOString())} – ${EIT.fmtTime(new Date(r.end * 1000).toISOString())} (${r.hours} h): `,
          EIT.reasonText(r.reason))))));
    }
    // The view as a file.
    const win = p.kind === "hourly" ? "1h" : p.window;
    exportBox.replaceChildren(...["csv", "xlsx"].map((fmt) => el("button", {
      type: "button", class: "secondary small", "data-export": fmt,
      onclick: () => download(`${base}/export?${range}&window=${win}&format=${fmt}&lang=${EIT.lang}`,
        `${factoryId}-${device.id}-${channel.id}-${win}.${fmt}`).catch((err) => EIT.toast(EIT.explain(err))),
    }, t("export_" + fmt))));
    if (!box.childElementCount) {
      const values = data.slice(1).flat().filter((v) => v !== null);
      const lo = Math.min(...values), hi = Math.max(...values);
      const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
      const yRange = [Math.max(lo - pad, Math.min(lo, 0)), hi + pad];
      const axes = [{ values: timeLabels, space: 60 }, { scale: "y", label: avgBasis, size: 60 }];
      const scales = { x: { time: true, range: [start.getTime() / 1000, end.getTime() / 1000 + (live ? HOUR : 0)] }, y: { range: yRange } };
      if (twoBases) {
        scales.raw = { range: yRange };
        axes.push({ scale: "raw", side: 1, label: rawBasis, size: 60, grid: { show: false } });
      }
      const opts = {
        width: Math.max(240, box.clientWidth),
        height: 240,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), cfg.timezone),
        series,
        scales,
        axes,
        legend: { live: true },
        cursor: { drag: { x: false, y: false }, points: { size: 8 } },
      };
      const chart = new uPlot(opts, data, box);
      charts.push({ chart, box });
    }
    card.dataset.drawn = "true";
  }

  function channelCard(device, channel, latest) {
    // The latest reading, highlighted when above the shortest limit in force (a sign, not a verdict).
    const first = [...channel.limits].sort((a, b) => ["instant", "1h", "8h", "24h"].indexOf(a.averaging) - ["instant", "1h", "8h", "24h"].indexOf(b.averaging))[0];
    const above = !!(latest && first && ((first.max_in_channel_unit !== null && latest.value > first.max_in_channel_unit)
      || (first.min_in_channel_unit !== null && latest.value < first.min_in_channel_unit)));
    const now = latest
      ? el("span", { class: "now" + (latest.flag === "N" ? "" : " flagged") + (above ? " above" : ""), "data-above": String(above) },
        fmtNum(latest.value), " ", EIT.unitSymbol(channel.unit), above ? ` ▲ ${t("above_limit")}` : "")
      : el("span", { class: "hint" }, t("no_values"));
    const p = plan(channel);
    const lim = p.limit;
    const limText = lim
      ? `${t("chart_limit")} (${lim.averaging}): ${[lim.min, lim.max].filter((v) => v !== null).map(fmtNum).join("–")} ${EIT.unitSymbol(lim.unit)} · ${lim.origin}`
      : t("chart_no_limit");
    const focused = focus === `${device.id}/${channel.id}` || focus === device.id;
    return el("article", { class: "chart-card" + (focused ? " focus" : ""), "data-channel": `${device.id}/${channel.id}`, "data-focus": String(focused) },
      el("header", {}, el("h3", {}, `${EIT.paramName(channel.parameter)} (${EIT.paramSymbol(channel.parameter)})`), now),
      el("p", { class: "hint" }, limText),
      el("p", { class: "running hint", hidden: true }),
      el("div", { class: "chart" }, el("p", { class: "empty" }, t("loading"))),
      el("div", { class: "gaps" }),
      el("div", { class: "exports" }));
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
    document.getElementById("factory-state").replaceWith(Object.assign(stateBadge(factory.state, factory.state_parameters), { id: "factory-state" }));
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

  /** The moment a day (YYYY-MM-DD) begins in the town's time zone. */
  function localMidnight(day) {
    const [y, m, d] = day.split("-").map(Number);
    const guess = Date.UTC(y, m - 1, d);
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: cfg.timezone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" })
      .formatToParts(new Date(guess)).map((q) => [q.type, Number(q.value)]));
    const shown = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
    return new Date(guess - (shown - guess));
  }

  const rangeForm = document.getElementById("range-form");
  rangeForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const from = rangeForm.elements.from.value, to = rangeForm.elements.to.value;
    if (!from || !to || to < from) { EIT.message(t("range_invalid")); return; }
    EIT.message("");
    const endDay = new Date(Date.UTC(...to.split("-").map((v, i) => Number(v) - (i === 1 ? 1 : 0))) + 86400e3).toISOString().slice(0, 10);
    const endAt = localMidnight(endDay);
    period = { start: localMidnight(from), end: new Date(Math.min(endAt.getTime(), Date.now())), chosen: true };
    showPeriod();
    document.body.dataset.loaded = "false";
    load();
  });

  function showPeriod() {
    const note = document.getElementById("period");
    for (const o of document.querySelectorAll(".segmented button")) o.setAttribute("aria-pressed", String(!period && Number(o.dataset.hours) === hours));
    note.hidden = !period;
    // A case's period (from the console's link) says so; a range chosen here is "shown".
    const word = period && period.chosen ? t("range_shown") : t("range_case");
    if (period) note.textContent = `${word}: ${fmtTime(period.start.toISOString())} – ${fmtTime(period.end.toISOString())} · ${EIT.tzLabel()}`;
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
