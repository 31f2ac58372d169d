/* The API explorer (/docs): Swagger UI from the vendored bundle, started from this file rather
 * than an inline script, so that the page's Content-Security-Policy allows scripts from this
 * server only. */
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
