// Starts Swagger UI on this server's OpenAPI document. No validator badge: it would call validator.swagger.io,
// and the page talks to this server only.
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  tryItOutEnabled: false,
});
