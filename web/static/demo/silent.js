// The redirect target of the demo's silent renewal. Gatehouse answers the
// prompt=none request in the demo's hidden iframe by sending it here, with
// ?code=&state= or ?error=login_required&state=; this page hands that URL
// to the demo page that made the iframe (same origin only) and does
// nothing else: the demo checks state and exchanges the code.
"use strict";
if (window.parent !== window) {
  window.parent.postMessage({ type: "gatehouse-demo-silent", url: window.location.href }, window.location.origin);
}
