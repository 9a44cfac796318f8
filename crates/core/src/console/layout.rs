//! The page shell every console page shares: head (stylesheet, the vendored htmx,
//! the no-JavaScript refresh), a skip link, the navigation with "Sign out", and
//! `<main>`. No inline script or style anywhere (the CSP forbids both).

use maud::{DOCTYPE, Markup, html};

/// What the shell needs besides the page's own content.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shell<'a> {
    /// The session's CSRF token; `None` on the sign-in page (no navigation then).
    pub csrf: Option<&'a str>,
    /// Reload the whole page every this many seconds when JavaScript is off (with
    /// it, htmx refreshes the live part instead).
    pub refresh_without_js: Option<u64>,
}

/// A whole page titled `title` around `body`.
pub(crate) fn page(title: &str, shell: Shell<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx would otherwise inject an inline <style> (refused by the CSP),
                // keep page snapshots in localStorage, and may evaluate attributes.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"historyCacheSize":0,"allowEval":false,"selfRequestsOnly":true}"#;
                meta name="referrer" content="no-referrer";
                title { (title) " · offboard console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx.min.js" defer {}
                @if let Some(secs) = shell.refresh_without_js {
                    noscript { meta http-equiv="refresh" content=(secs); }
                }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "offboard console" }
                    @if let Some(csrf) = shell.csrf {
                        nav aria-label="Console" {
                            a href="/console" { "Overview" }
                            a href="/console/jobs" { "Jobs" }
                        }
                        form class="sign-out" method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A message box; `role="alert"` for errors so a screen reader says it at once.
pub(crate) fn notice(kind: NoticeKind, text: &str) -> Markup {
    let (class, role) = match kind {
        NoticeKind::Error => ("notice notice-error", "alert"),
        NoticeKind::Done => ("notice notice-done", "status"),
    };
    html! { p class=(class) role=(role) { (text) } }
}

/// What a [`notice`] says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoticeKind {
    /// Something was refused or failed.
    Error,
    /// An action went through.
    Done,
}
