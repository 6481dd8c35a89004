// Submits the SAML/OIDC form_post form without user action (CSP forbids inline scripts).
document.getElementById("autopost").submit();
