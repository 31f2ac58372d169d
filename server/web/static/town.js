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
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("map_title"), id: "town-map" });
    // Graticule with degree labels.
    const lonMin = cx - (W / 2) / (kx * scale), lonMax = cx + (W / 2) / (kx * scale);
    const latMin = cy - (H / 2) / scale, latMax = cy + (H / 2) / scale;
    const step = niceStep(Math.max(lonMax - lonMin, latMax - latMin));
    const grid = el("g", { stroke: "#c5d6de", "stroke-width": 1, fill: "#6b8796", "font-size": 11 });
    for (let v = Math.ceil(lonMin / step) * step; v < lonMax; v += step) {
      grid.append(el("line", { x1: x(v), x2: x(v), y1: 0, y2: H }), el("text", { x: x(v) + 3, y: H - 4, stroke: "none" }, v.toFixed(3) + "°E"));
    }
    for (let v = Math.ceil(latMin / step) * step; v < latMax; v += step) {
      grid.append(el("line", { x1: 0, x2: W, y1: y(v), y2: y(v) }), el("text", { x: 3, y: y(v) - 3, stroke: "none" }, v.toFixed(3) + "°N"));
    }
    svg.append(grid);
    // Scale bar: 1 km (or 2, 5) at the map's mid-latitude.
    const kmPerDeg = 111.32;
    const pxPerKm = scale / kmPerDeg;
    const km = [0.5, 1, 2, 5, 10, 20].find((k) => k * pxPerKm >= 60) || 50;
    // In the margins, where no factory is drawn: the scale bottom right, north top right.
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
    // Factories.
    for (const f of factories) {
      const px = x(f.lon), py = y(f.lat);
      const label = factoryName(f);
      const max = W < 500 ? 18 : 28;
      const short = label.length > max ? label.slice(0, max - 1) + "…" : label;
      const anchor = px > W * 0.6 ? "end" : "start";
      const dx = anchor === "end" ? -17 : 17;
      svg.append(el("a", { svg: true, href: link("/factory/" + f.id), class: "marker", "data-factory": f.id, "data-state": f.state },
        el("title", {}, `${label}: ${t("state_" + f.state)}`),
        el("circle", { cx: px, cy: py, r: 12, fill: COLOURS[f.state], stroke: "#fff", "stroke-width": 3 }),
        el("text", { x: px + dx, y: py + 4, "text-anchor": anchor, "font-size": 13, fill: "#1b2630", stroke: "#e8f1f5", "stroke-width": 4, "paint-order": "stroke" }, short),
      ));
    }
    box.replaceChildren(svg);
    box.removeAttribute("aria-busy");
    document.getElementById("legend").replaceChildren(...STATES.map((s) =>
      el("li", {}, el("span", { class: "dot", style: `background:${COLOURS[s]}` }), t("state_" + s))));
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

  function drawFactories(factories, latest) {
    const byFactory = {};
    for (const r of latest) (byFactory[r.factory] ||= []).push(r);
    const box = document.getElementById("factories");
    box.replaceChildren(...factories.map((f) => {
      const rows = (byFactory[f.id] || []).map((r) => el("tr", { "data-channel": `${r.device}/${r.channel}` },
        el("td", {}, r.channel), el("td", { class: "num" + (r.flag === "N" ? "" : " flagged") }, fmtNum(r.value), " ", r.unit)));
      return el("article", { class: "card factory-card", "data-factory": f.id },
        el("h3", {}, el("a", { href: link("/factory/" + f.id) }, factoryName(f))), stateBadge(f.state),
        el("p", { class: "hint" }, [f.district, f.estate].filter(Boolean).join(" · ")),
        rows.length ? el("table", { class: "values" }, el("tbody", {}, rows)) : el("p", { class: "hint" }, t("no_values")),
        el("p", { class: "hint" }, t("last_update") + ": " + fmtTime(f.last_update)));
    }));
  }

  async function load() {
    try {
      const [town, factories, latest] = await Promise.all([
        api("/api/v1/town"), api("/api/v1/factories"), api("/api/v1/latest")]);
      document.getElementById("last-update").textContent = fmtTime(town.last_update);
      document.getElementById("state-counts").replaceChildren(...STATES.filter((s) => town.states[s]).map((s) =>
        el("li", {}, stateBadge(s), " ", town.states[s])));
      drawMap(factories);
      drawAqi(town.aqi, factories);
      drawFactories(factories, latest);
      document.body.dataset.loaded = "true";
    } catch (err) {
      document.getElementById("factories").replaceChildren(el("p", { class: "error" }, EIT.explain(err)));
    }
  }

  load();
  setInterval(load, 60000);
})();
