/* The login page: OAuth2 password flow against /api/v1/token; the token is kept in this
 * browser's local storage until it expires or the user logs out. */
"use strict";

(() => {
  const { t, api, link, session } = EIT;
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const next = new URLSearchParams(location.search).get("next");

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
      const target = next && next.startsWith("/") && !next.startsWith("//") ? next : (role === "operator" ? "/operator" : "/console");
      location.href = link(target);
    } catch (err) {
      // The lockout in the page's language, with the wait the server gives ("try again in N s").
      const wait = err.status === 429 ? /in (\d+) s/.exec(err.detail || "") : null;
      const detail = err.status === 401 ? t("bad_credentials")
        : err.status === 429 ? t("locked_out", { s: wait ? wait[1] : "" }) : (err.detail || err.message);
      error.textContent = t("login_failed", { detail });
      error.hidden = false;
    }
  });
})();
