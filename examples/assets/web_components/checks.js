// Self-check panel shared by the demo pages: records, in the page itself,
// what the Content-Security-Policy let run. Loaded with the page's nonce.
(() => {
  'use strict';

  function mark(id, result) {
    const item = document.getElementById(`check-${id}`);
    if (item) {
      item.dataset.result = result;
      item.querySelector('output').textContent = result;
    }
  }

  // An injected inline script without the nonce is blocked and the browser
  // fires this event (and sends a report to the report-uri).
  document.addEventListener('securitypolicyviolation', (event) => {
    if (event.disposition === 'enforce' && event.blockedURI === 'inline'
        && event.effectiveDirective.startsWith('script-src')) {
      mark('injected-script', 'blocked');
    }
  });

  window.faceDemo = {
    mark,
    // Hands the nonce to the component, as with the real Face SDK Web
    // Components' `nonce` setting, and records how it starts.
    start(element, nonce) {
      const styled = () =>
        getComputedStyle(element).borderTopColor === 'rgb(0, 128, 96)' ? 'applied' : 'missing';
      element.addEventListener('face-liveness-ready', (event) => {
        mark('component-style', styled());
        mark('component-wasm', String(event.detail.answer));
      });
      element.addEventListener('face-liveness-error', () => {
        mark('component-style', styled());
        mark('component-wasm', 'blocked');
      });
      element.settings = { nonce, url: '/api/v1' };
    },
  };
})();
