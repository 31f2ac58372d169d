/* The public town page: a map of the factories coloured by compliance state (SVG drawn from their
 * latitude and longitude, no map tiles), the Thai AQI, the latest values, the last update. */
"use strict";

(() => {
  const { t, api, el, fmtTime, fmtNum, link, stateBadge, factoryName, cfg } = EIT;
  // The public states (alerts/public_state.py); provisional has its own colour, never red.
  const STATES = ["compliant", "provisional", "exceeding", "shutdown", "no_data"];
  const COLOURS = { compliant: "#2e7d32", provisional: "#b26a00", exceeding: "#c62828", shutdown: "#455a64", no_data: "#757575" };
  const AQI_CLASS = { blue: "aqi-blue", green: "aqi-green", yellow: "aqi-yellow", orange: "aqi-orange", red: "aqi-red" };

  function niceStep(span) {
    const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
    return steps.find((s) => span / s <= 6) || 10;
  }

  const SEVERITY = { exceeding: 0, provisional: 1, no_data: 2, shutdown: 3, compliant: 4 };
  let allFactories = [];
  let shownIds = null;  // a cluster's factories, or null: every factory in the list

  function overlaps(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }

  /** The map: factories at their latitude and longitude (no tiles), a scale and north. Markers
   * closer than a finger's width are drawn as one cluster with a count; a label is drawn only where
   * it overlaps no other label or marker (a marker without one is named in its title and the list). */
  function drawMap(factories) {
    const box = document.getElementById("map");
    // Drawn at the size it is shown, so labels keep a readable size on a phone.
    const W = Math.round(Math.min(900, Math.max(300, box.clientWidth || 640)));
    const H = Math.round(W * (W < 500 ? 0.8 : 0.62)), PAD = 48;
    const lats = factories.map((f) => f.lat), lons = factories.map((f) => f.lon);
    let [lat0, lat1] = [Math.min(...lats), Math.max(...lats)];
    let [lon0, lon1] = [Math.min(...lons), Math.max(...lons)];
    const minSpan = 0.02;
    if (lat1 - lat0 < minSpan) { const c = (lat0 + lat1) / 2; lat0 = c - minSpan / 2; lat1 = c + minSpan / 2; }
    if (lon1 - lon0 < minSpan) { const c = (lon0 + lon1) / 2; lon0 = c - minSpan / 2; lon1 = c + minSpan / 2; }
    const kx = Math.cos(((lat0 + lat1) / 2) * Math.PI / 180); // equirectangular, true scale at mid-latitude
    const scale = Math.min((W - 2 * PAD) / ((lon1 - lon0) * kx), (H - 2 * PAD) / (lat1 - lat0));
    const cx = (lon0 + lon1) / 2, cy = (lat0 + lat1) / 2;
    const x = (lon) => W / 2 + (lon - cx) * kx * scale;
    const y = (lat) => H / 2 - (lat - cy) * scale;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, "aria-label": t("map_title"), id: "town-map" });
    // The town's outline (site registry, town.map_outline), else a light graticule.
    const outline = cfg.town && cfg.town.outline;
    if (outline && outline.length) {
      for (const ring of outline) {
        svg.append(el("polygon", { points: ring.map(([lon, lat]) => `${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join(" "), fill: "#f7fbf4", stroke: "#9bb59b", "stroke-width": 1.5, class: "outline" }));
      }
    }
    const lonMin = cx - (W / 2) / (kx * scale), lonMax = cx + (W / 2) / (kx * scale);
    const latMin = cy - (H / 2) / scale, latMax = cy + (H / 2) / scale;
    const step = niceStep(Math.max(lonMax - lonMin, latMax - latMin));
    const grid = el("g", { stroke: "#dbe6eb", "stroke-width": 1, fill: "#5b6b78", "font-size": 10 });
    for (let v = Math.ceil(lonMin / step) * step; v < lonMax; v += step) {
      grid.append(el("line", { x1: x(v), x2: x(v), y1: 0, y2: H }), el("text", { x: x(v) + 3, y: H - 4, stroke: "none" }, v.toFixed(3) + "°E"));
    }
    for (let v = Math.ceil(latMin / step) * step; v < latMax; v += step) {
      grid.append(el("line", { x1: 0, x2: W, y1: y(v), y2: y(v) }), el("text", { x: 3, y: y(v) - 3, stroke: "none" }, v.toFixed(3) + "°N"));
    }
    svg.append(grid);
    const kmPerDeg = 111.32;
    const pxPerKm = scale / kmPerDeg;
    const km = [0.5, 1, 2, 5, 10, 20].find((k) => k * pxPerKm >= 60) || 50;
    const sx = W - 16 - km * pxPerKm, sy = H - 24;
    svg.append(el("g", { stroke: "#33444f", "stroke-width": 2, fill: "#33444f", "font-size": 12 },
      el("line", { x1: sx, x2: sx + km * pxPerKm, y1: sy, y2: sy }),
      el("line", { x1: sx, x2: sx, y1: sy - 5, y2: sy + 5 }),
      el("line", { x1: sx + km * pxPerKm, x2: sx + km * pxPerKm, y1: sy - 5, y2: sy + 5 }),
      el("text", { x: sx + km * pxPerKm, y: sy - 8, stroke: "none", "text-anchor": "end" }, km + " km"),
    ));
    const nx = W - 24;
    svg.append(el("g", { fill: "#33444f", "font-size": 12 },
      el("polygon", { points: `${nx},8 ${nx + 6},24 ${nx},20 ${nx - 6},24` }),
      el("text", { x: nx, y: 38, "text-anchor": "middle" }, t("map_north")),
    ));
    box.replaceChildren(svg);

    // Clusters: the most severe factories first, each joining a cluster within reach.
    // A finger's width apart at least; on a phone wider still, so that names find room.
    const R = 12, REACH = W < 500 ? 44 : 2 * R + 8;
    const clusters = [];
    for (const f of [...factories].sort((a, b) => SEVERITY[a.state] - SEVERITY[b.state] || a.id.localeCompare(b.id))) {
      const px = x(f.lon), py = y(f.lat);
      const near = clusters.find((c) => Math.hypot(c.x - px, c.y - py) < REACH);
      if (near) { near.members.push(f); continue; }
      clusters.push({ x: px, y: py, members: [f] });
    }
    const taken = [{ x: sx - 4, y: sy - 22, w: km * pxPerKm + 8, h: 30 }, { x: nx - 10, y: 4, w: 20, h: 38 }];
    // Each marker's disc with its white ring (a cluster's is larger).
    for (const c of clusters) {
      const r = (c.members.length > 1 ? R + 4 : R) + 2;
      taken.push({ x: c.x - r, y: c.y - r, w: 2 * r, h: 2 * r });
    }
    const labels = el("g", {});
    const marks = el("g", {});
    // In the document before any label is measured (a detached text has no size).
    svg.append(marks, labels);
    for (const c of clusters) {
      const worst = c.members[0].state;
      if (c.members.length > 1) {
        const ids = c.members.map((f) => f.id);
        const names = c.members.map((f) => `${factoryName(f)}: ${t("state_" + f.state)}`).join("\n");
        marks.append(el("a", { svg: true, href: "#factory-list", class: "cluster", "data-factories": ids.join(","), "data-state": worst,
          "aria-label": t("map_cluster", { n: c.members.length }),
          onclick: (ev) => { ev.preventDefault(); showOnly(ids); } },
          el("title", {}, names),
          el("circle", { cx: c.x, cy: c.y, r: R + 4, fill: COLOURS[worst], stroke: "#fff", "stroke-width": 3 }),
          el("text", { x: c.x, y: c.y + 5, "text-anchor": "middle", "font-size": 14, "font-weight": 700, fill: "#fff" }, String(c.members.length))));
        continue;
      }
      const f = c.members[0];
      const label = factoryName(f);
      // On the map, the name without the company form ("บริษัท … จำกัด", "Co., Ltd."); the title and
      // the list keep it whole.
      const bare = label.replace(/^บริษัท\s*/, "").replace(/\s*จำกัด(\s*\(มหาชน\))?/, "")
        .replace(/,?\s*(Public\s+)?(Co\.,?\s*Ltd\.?|Company Limited|Ltd\.?|PCL\.?)/i, "").trim() || label;
      const max = W < 500 ? 14 : 24;
      const short = bare.length > max ? bare.slice(0, max - 1) + "…" : bare;
      const a = el("a", { svg: true, href: link("/factory/" + f.id), class: "marker", "data-factory": f.id, "data-state": f.state },
        el("title", {}, `${label}: ${t("state_" + f.state)}`),
        el("circle", { cx: c.x, cy: c.y, r: R, fill: COLOURS[f.state], stroke: "#fff", "stroke-width": 3 }));
      marks.append(a);
      // The label where it fits: right, left, above, below; else none.
      const text = el("text", { "font-size": 12, fill: "#1b2630", stroke: "#e8f1f5", "stroke-width": 4, "paint-order": "stroke", class: "label", "data-factory": f.id }, short);
      labels.append(text);
      text.setAttribute("x", "0"); text.setAttribute("y", "0");
      const bb = text.getBBox();
      const spots = [
        [c.x + R + 6, c.y + 4, "start"], [c.x - R - 6, c.y + 4, "end"],
        [c.x, c.y - R - 8, "middle"], [c.x, c.y + R + 18, "middle"],
      ];
      let placed = false;
      for (const [lx, ly, anchor] of spots) {
        const left = anchor === "start" ? lx : anchor === "end" ? lx - bb.width : lx - bb.width / 2;
        // The text's box as drawn at (0, 0), moved to this spot (bb.y: the ascent, above the baseline).
        const rect = { x: left + bb.x - 2, y: ly + bb.y - 2, w: bb.width + 4, h: bb.height + 4 };
        if (rect.x < 0 || rect.y < 0 || rect.x + rect.w > W || rect.y + rect.h > H) continue;
        if (taken.some((r) => overlaps(r, rect))) continue;
        text.setAttribute("x", String(lx)); text.setAttribute("y", String(ly)); text.setAttribute("text-anchor", anchor);
        taken.push(rect);
        placed = true;
        break;
      }
      if (!placed) text.remove();
    }
    box.removeAttribute("aria-busy");
    document.getElementById("legend").replaceChildren(...STATES.map((s) =>
      el("li", {}, el("span", { class: "dot", style: `background:${COLOURS[s]}` }), t("state_" + s))));
  }

  function showOnly(ids) {
    shownIds = ids;
    drawList();
    document.getElementById("factory-list").scrollIntoView({ block: "start" });
  }

  /** Search by name (Thai or English), id, district or estate: up to 8 links under the field. */
  function search() {
    const q = document.getElementById("factory-search").value.trim().toLowerCase();
    const box = document.getElementById("search-results");
    if (!q) { box.replaceChildren(); return; }
    const hits = allFactories.filter((f) => [f.name, f.name_th, f.id, f.district, f.estate].some((v) => (v || "").toLowerCase().includes(q)));
    box.replaceChildren(...(hits.length ? hits.slice(0, 8).map((f) => el("li", {},
      el("a", { href: link("/factory/" + f.id), "data-factory": f.id }, factoryName(f)), " ", stateBadge(f.state, f.state_parameters)))
      : [el("li", { class: "hint" }, t("map_no_match"))]));
  }

  function drawAqi(aqi, factories) {
    const box = document.getElementById("aqi");
    if (!aqi.length) { box.replaceChildren(el("p", { class: "hint" }, t("aqi_none"))); return; }
    const bands = Object.fromEntries(cfg.aqi_bands.map((b) => [b.id, b]));
    const names = Object.fromEntries(factories.map((f) => [f.id, factoryName(f)]));
    box.replaceChildren(...aqi.map((a) => {
      const band = bands[a.band] || { colour: "blue", en: a.band, th: a.band };
      const subs = Object.entries(a.sub_indices).map(([k, v]) => `${k.toUpperCase()} ${Math.round(v)}`).join(" · ");
      return el("div", { class: "aqi", "data-aqi": Math.round(a.value) },
        el("div", { class: `num ${AQI_CLASS[band.colour] || ""} ${band.colour}` }, Math.round(a.value)),
        el("div", {},
          el("strong", {}, band[EIT.lang] || band.en),
          el("div", { class: "hint" }, t("aqi_station", { name: names[a.factory] || a.factory }) + " · " + fmtTime(a.time)),
          el("div", { class: "hint" }, subs)));
    }));
  }

  let latestByFactory = {};

  /** The factories as a compact list: name, state naming its parameters, where; the latest values
   * folded away (a phone shows 40 factories without scrolling for minutes). */
  function drawList() {
    const box = document.getElementById("factories");
    const list = shownIds ? allFactories.filter((f) => shownIds.includes(f.id)) : allFactories;
    document.getElementById("list-all").hidden = !shownIds;
    document.getElementById("list-note").textContent = shownIds ? t("map_shown_of", { shown: list.length, total: allFactories.length }) : "";
    box.replaceChildren(...[...list].sort((a, b) => SEVERITY[a.state] - SEVERITY[b.state] || factoryName(a).localeCompare(factoryName(b))).map((f) => {
      const latest = latestByFactory[f.id] || [];
      return el("article", { class: "factory-row factory-card", "data-factory": f.id },
        el("div", { class: "row-head" }, el("a", { href: link("/factory/" + f.id) }, factoryName(f)), stateBadge(f.state, f.state_parameters)),
        latest.length
          ? el("details", {}, el("summary", {}, f.district ? `${f.district} · ${t("latest_values")}` : t("latest_values")),
            el("p", { class: "hint" }, [f.estate, t("last_update") + ": " + fmtTime(f.last_update)].filter(Boolean).join(" · ")),
            EIT.valuesTable(f, latest))
          : el("p", { class: "hint" }, [f.district, t("no_values")].filter(Boolean).join(" · ")));
    }));
  }

  async function load() {
    try {
      const [town, factories, latest] = await Promise.all([
        api("/api/v1/town"), api("/api/v1/factories"), api("/api/v1/latest")]);
      document.getElementById("last-update").textContent = fmtTime(town.last_update);
      document.getElementById("state-counts").replaceChildren(...STATES.filter((s) => town.states[s]).map((s) =>
        el("li", {}, stateBadge(s), " ", town.states[s])));
      allFactories = factories;
      latestByFactory = {};
      for (const r of latest) (latestByFactory[r.factory] ||= []).push(r);
      drawMap(factories);
      drawAqi(town.aqi, factories);
      drawList();
      search();
      document.body.dataset.loaded = "true";
    } catch (err) {
      document.getElementById("factories").replaceChildren(el("p", { class: "error" }, EIT.explain(err)));
    }
  }

  document.getElementById("factory-search").addEventListener("input", search);
  document.getElementById("list-all").addEventListener("click", () => { shownIds = null; drawList(); });
  load();
  setInterval(load, 60000);
})();
