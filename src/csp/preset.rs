//! A strict policy for pages that host the Face SDK Web Components.

use super::policy::{Policy, PolicyBuilder, Source};

/// A strict policy for a page that hosts the Face SDK Web Components
/// (`<face-liveness>`, `<document-reader>`, ...), which talk to the Face SDK
/// Web Service at `web_service` (such as `https://faceapi.example.com`; the
/// page's own origin is always allowed, for a Web Service behind the same
/// gateway).
///
/// It returns a [`PolicyBuilder`], so the preset can be extended before
/// [`build`](PolicyBuilder::build) checks it (including `web_service`):
///
/// ```text
/// default-src 'none'
/// script-src 'nonce-…' 'strict-dynamic' 'wasm-unsafe-eval'
/// style-src 'self' 'nonce-…'
/// worker-src 'self' blob:
/// img-src 'self' blob: data:
/// media-src 'self' blob: data:
/// connect-src 'self' <web_service>
/// font-src 'self'
/// manifest-src 'self'
/// object-src 'none'
/// base-uri 'none'
/// form-action 'self'
/// frame-ancestors 'none'
/// ```
///
/// Directive by directive:
///
/// - `default-src 'none'`: anything not listed below is blocked, so a new
///   kind of request fails closed.
/// - `script-src`: only scripts carrying the response's nonce run, plus
///   (`'strict-dynamic'`) the scripts those load, which is how the
///   components' bundle loads its chunks without listing hosts. Injected
///   inline scripts, `javascript:` URLs and inline event handlers are
///   blocked. `'wasm-unsafe-eval'` lets the components compile their
///   WebAssembly (face detection) without allowing JavaScript `eval`.
/// - `style-src 'self' 'nonce-…'`: style sheets from the page's origin and
///   `<style>` elements carrying the nonce. The components inject their
///   styles as `<style nonce>` when given the nonce through their `nonce`
///   setting.
/// - `worker-src 'self' blob:`: the components run detection in workers,
///   some created from `blob:` URLs.
/// - `img-src` and `media-src` with `blob:` and `data:`: camera frames and
///   captured images are shown from `blob:` and `data:` URLs.
/// - `connect-src 'self' <web_service>`: `fetch` to the page's origin (the
///   WebAssembly and model files) and to the Face SDK Web Service.
/// - `font-src 'self'`, `manifest-src 'self'`: the page's own fonts and
///   manifest.
/// - `object-src 'none'`: no plugins.
/// - `base-uri 'none'`: an injected `<base>` cannot redirect relative
///   script URLs.
/// - `form-action 'self'`: forms post only to the page's origin.
/// - `frame-ancestors 'none'`: the page cannot be framed (clickjacking); a
///   camera page should never be.
///
/// Add reporting with [`report_uri`](PolicyBuilder::report_uri) and
/// [`report_to`](PolicyBuilder::report_to), and extra sources with the
/// builder's directive methods:
///
/// ```
/// use tower_perimeter::csp::{preset, Source};
///
/// let policy = preset::face_sdk_web_components("https://faceapi.example.com")
///     .img_src([Source::host("https://cdn.example.com")])
///     .report_uri("/csp-reports")
///     .build()?;
/// assert!(policy.template().contains("connect-src 'self' https://faceapi.example.com"));
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
pub fn face_sdk_web_components(web_service: &str) -> PolicyBuilder {
    Policy::builder()
        .default_src([Source::None])
        .script_src([Source::Nonce, Source::StrictDynamic, Source::WasmUnsafeEval])
        .style_src([Source::SelfOrigin, Source::Nonce])
        .worker_src([Source::SelfOrigin, Source::scheme("blob:")])
        .img_src([
            Source::SelfOrigin,
            Source::scheme("blob:"),
            Source::scheme("data:"),
        ])
        .media_src([
            Source::SelfOrigin,
            Source::scheme("blob:"),
            Source::scheme("data:"),
        ])
        .connect_src([Source::SelfOrigin, Source::host(web_service)])
        .font_src([Source::SelfOrigin])
        .manifest_src([Source::SelfOrigin])
        .object_src([Source::None])
        .base_uri([Source::None])
        .form_action([Source::SelfOrigin])
        .frame_ancestors([Source::None])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_renders_the_documented_policy() {
        let policy = face_sdk_web_components("https://faceapi.example.com")
            .build()
            .unwrap();
        assert_eq!(
            policy.template(),
            "default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
             style-src 'self' 'nonce-{nonce}'; worker-src 'self' blob:; img-src 'self' blob: data:; \
             media-src 'self' blob: data:; connect-src 'self' https://faceapi.example.com; \
             font-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
    }

    #[test]
    fn preset_rejects_a_bad_web_service_url() {
        let err = face_sdk_web_components("https://faceapi.example.com; script-src *")
            .build()
            .unwrap_err();
        assert!(err.message().contains("connect-src"), "{err}");
    }
}
