// A stand-in for the Face SDK Web Components' <face-liveness> element.
//
// The real components are fetched from the vendor's package registry; this
// file behaves the same way towards a Content-Security-Policy so a page can
// be tested without them:
//
// - it takes the page's nonce through its `settings.nonce` value and puts it
//   on the <style> element it injects into its shadow root (blocked by a
//   nonce-based style-src without it);
// - it fetches and instantiates a WebAssembly module (blocked without
//   'wasm-unsafe-eval' in script-src, or without connect-src for its URL).
//
// It reports what happened with events: `face-liveness-ready` (detail:
// { answer }) once the WebAssembly module runs, `face-liveness-error`
// (detail: { message }) if it could not start.
(() => {
  'use strict';

  const base = document.currentScript
    ? new URL('.', document.currentScript.src)
    : new URL('/static/', window.location.href);

  class FaceLiveness extends HTMLElement {
    #settings = {};
    #started = false;

    constructor() {
      super();
      this.attachShadow({ mode: 'open' });
    }

    get settings() {
      return { ...this.#settings };
    }

    set settings(value) {
      this.#settings = { ...this.#settings, ...value };
      this.#start();
    }

    connectedCallback() {
      this.#start();
    }

    #start() {
      // Like the real components, wait for the settings before rendering:
      // without the nonce the injected style would be blocked.
      if (this.#started || !this.isConnected || !this.#settings.nonce) {
        return;
      }
      this.#started = true;

      const style = document.createElement('style');
      style.setAttribute('nonce', this.#settings.nonce);
      style.textContent =
        ':host { display: block; padding: 1em; border: 3px solid rgb(0, 128, 96); }' +
        ' .status { color: rgb(0, 128, 96); font-family: sans-serif; }';

      const status = document.createElement('p');
      status.className = 'status';
      status.textContent = 'Starting the liveness check…';
      this.shadowRoot.append(style, status);

      const wasmUrl = new URL(this.#settings.wasmUrl ?? 'face-liveness.wasm', base);
      WebAssembly.instantiateStreaming(fetch(wasmUrl))
        .then(({ instance }) => {
          const answer = instance.exports.answer();
          status.textContent = `Ready (WebAssembly answered ${answer}); API at ${this.#settings.url ?? '/api'}`;
          this.dispatchEvent(new CustomEvent('face-liveness-ready', { detail: { answer }, bubbles: true }));
        })
        .catch((error) => {
          status.textContent = `Could not start: ${error.message}`;
          this.dispatchEvent(
            new CustomEvent('face-liveness-error', { detail: { message: error.message }, bubbles: true }),
          );
        });
    }
  }

  customElements.define('face-liveness', FaceLiveness);
})();
