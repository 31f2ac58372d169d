/* The login page: OAuth2 password flow against /api/v1/token; the token is kept in this
 * browser's local storage until it expires or the user logs out. */
"use strict";

(() => {
  const { t, api, link, session } = EIT;
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const next = sameOriginPath(new URLSearchParams(location.search).get("next"));

  /** The page to go to after logging in: ``next`` only when it is a path of this site. A browser
   * reads "/\evil.example/x", "/<tab>/evil.example" and "//evil.example" as other sites, and
   * "https:x" as a URL: each is refused, and so is anything the URL parser puts elsewhere. */
  function sameOriginPath(value) {
    if (!value || value[0] !== "/" || /[\\\u0000-\u0020\u007f]/.test(value)) return null;
    let url;
    try { url = new URL(value, location.origin); } catch (e) { return null; }
    return url.origin === location.origin ? url.pathname : null;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      const answer = await api("/api/v1/token", {
        method: "POST", auth: false,
        form: { username: form.elements.username.value.trim(), password: form.elements.password.value },
      });
      session.set(answer);
      const role = answer.user.role;
      const target = next || (role === "operator" ? "/operator" : "/console");
      location.href = link(target);
    } catch (err) {
      const detail = err.status === 401 ? t("bad_credentials")
        : err.status === 429 ? t("too_many_logins", { seconds: err.retryAfter || "60" })
        : (err.detail || err.message);
      error.textContent = t("login_failed", { detail });
      error.hidden = false;
    }
  });
})();
