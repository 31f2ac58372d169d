/* The account's notification preferences: how the site registry routes alerts to it (not
 * changed here), muting of non-critical items (critical ones are always sent), the language of
 * its notifications, and the channels it adds (e-mail addresses, Apprise URLs). */
"use strict";

(() => {
  const { t, api, el, session, toast } = EIT;
  const page = document.getElementById("preferences");
  const message = document.getElementById("prefs-message");
  const options = document.getElementById("prefs-options");
  const add = document.getElementById("prefs-add");
  const error = document.getElementById("prefs-error");

  function show(p) {
    const r = p.routing;
    const routing = document.getElementById("prefs-routing");
    const registry = document.getElementById("prefs-registry");
    registry.textContent = "";
    if (r.as === "officer") {
      const where = [...r.factories, ...r.districts].join(", ") || "-";
      routing.textContent = t("prefs_routing_officer", { officer: r.officer, where });
      if (r.email) registry.textContent = t("prefs_registry_email", { email: r.email });
    } else if (r.as === "operator") {
      routing.textContent = t("prefs_routing_operator", { factory: r.factory });
      if (r.contacts.length) registry.textContent = t("prefs_contacts", { names: r.contacts.map((c) => c.name).join(", ") });
    } else {
      routing.textContent = t("prefs_routing_none");
    }
    options.elements.mute_non_critical.checked = p.mute_non_critical;
    // An officer's language is the registry's; others choose theirs.
    const own = r.as !== "officer";
    document.getElementById("prefs-language-field").hidden = !own;
    const said = document.getElementById("prefs-language-registry");
    said.hidden = own;
    if (!own) said.textContent = t("prefs_language_registry", { language: r.language });
    options.elements.language.value = p.language || EIT.lang;
    const items = p.channels.map((c) => el("li", { class: "channel", "data-channel": c.id },
      el("span", { class: "badge" }, c.kind), el("span", { class: "address" }, c.address),
      el("button", { type: "button", class: "secondary", "aria-label": `${t("prefs_remove")} ${c.address}`, onclick: () => remove(c) }, t("prefs_remove"))));
    document.getElementById("prefs-channels").replaceChildren(...(items.length ? items : [el("li", { class: "hint" }, t("prefs_no_channels"))]));
    const missing = [...new Set(p.channels.map((c) => c.kind))].filter((k) => !p.kinds_delivered.includes(k));
    const note = document.getElementById("prefs-not-delivered");
    note.hidden = !missing.length;
    if (missing.length) note.textContent = t("prefs_not_delivered", { kind: missing.join(", ") });
    page.hidden = false;
  }

  async function remove(c) {
    try {
      show(await api(`/api/v1/me/notifications/channels/${c.id}`, { method: "DELETE" }));
      toast(t("prefs_removed"));
    } catch (err) {
      toast(EIT.explain(err));
    }
  }

  options.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { mute_non_critical: options.elements.mute_non_critical.checked };
    if (!options.elements.language.closest("label").hidden) body.language = options.elements.language.value;
    try {
      show(await api("/api/v1/me/notifications", { method: "PUT", body }));
      toast(t("prefs_saved"));
    } catch (err) {
      toast(EIT.explain(err));
    }
  });

  add.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = { kind: add.elements.kind.value, address: add.elements.address.value.trim() };
    try {
      show(await api("/api/v1/me/notifications/channels", { method: "POST", body }));
      add.elements.address.value = "";
      toast(t("prefs_added"));
    } catch (err) {
      error.textContent = err.detail || err.message;
      error.hidden = false;
    }
  });

  document.addEventListener("DOMContentLoaded", async () => {
    if (!session.get()) {
      message.textContent = t("need_login");
      document.body.dataset.loaded = "true";
      return;
    }
    try {
      show(await api("/api/v1/me/notifications"));
    } catch (err) {
      message.textContent = EIT.explain(err);
    }
    document.body.dataset.loaded = "true";
  });
})();
