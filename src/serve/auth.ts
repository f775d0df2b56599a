/**
 * The server's token, for programs and for the page. With `--token T` every route needs it — the API, the model
 * file and the page's own files — shown in one of two ways:
 *  - `Authorization: Bearer T` (curl, scripts, the page's own fetches when it knows the token);
 *  - the session cookie a browser gets by logging in once: POST /auth/login with the form field `token=T` answers
 *    with `Set-Cookie: nextray_session=<HMAC-SHA256 of a fixed label under T>; HttpOnly; SameSite=Strict; Path=/`.
 *    HttpOnly keeps the page's scripts from reading it; SameSite=Strict keeps other sites from sending it (no
 *    cross-site request forgery); the value is derived from the token, so the token itself is never stored in the
 *    browser, and a new token (a restart with another one) ends every session.
 * A browser without the cookie that asks for a page gets the small login page below (401) instead of the app: a
 * form that posts the token, whose script also logs in by itself when the address carries `#token=T` (a fragment
 * never reaches a server, its logs or a proxy) and then reloads the address without it.
 *
 * Unauthenticated routes: GET /auth/login (the form), GET /auth/login.js (its script), POST /auth/login.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'nextray_session';
export const LOGIN_PATH = '/auth/login';
export const LOGIN_SCRIPT_PATH = '/auth/login.js';

/** Equal strings, compared through their digests so the time taken says nothing about the guess. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** The cookie value that stands for `token`: HMAC-SHA256(token, label), hex. */
export function sessionValue(token: string): string {
  return createHmac('sha256', token).update('nextray-session-v1').digest('hex');
}

/** `name=value` from a Cookie header (first occurrence), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Does the request carry the token (Bearer header) or a session made from it (cookie)? */
export function isAuthorized(headers: { authorization?: string | undefined; cookie?: string | undefined }, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(headers.authorization ?? '');
  if (m && sameSecret(m[1]!, token)) return true;
  const c = cookieValue(headers.cookie, SESSION_COOKIE);
  return c !== undefined && sameSecret(c, sessionValue(token));
}

/** The Set-Cookie header that logs a browser in. Session cookie (gone when the browser closes). */
export function sessionCookie(token: string): string {
  return `${SESSION_COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The token in a POST /auth/login body (form-encoded `token=...`), or undefined. */
export function tokenFromLoginBody(body: unknown): string | undefined {
  if (!Buffer.isBuffer(body)) return undefined;
  const t = new URLSearchParams(body.toString('utf8')).get('token');
  return t === null || t === '' ? undefined : t;
}

/**
 * The login page: no inline script (the server's CSP allows scripts from its own origin only), a form that works
 * without scripts (POST, then 303 back to /), and the script below for `#token=` addresses and a message on failure.
 */
export function loginPage(message?: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>neXt-Ray: token needed</title><link rel="icon" href="data:,"></head>
<body data-state="login" style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem">
<h1>neXt-Ray</h1>
<p>This server needs its access token (the one given to <code>nextray serve --token</code>).</p>
<form method="post" action="${LOGIN_PATH}" data-testid="login">
<label>Token <input name="token" type="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Open</button>
</form>
<p id="login-error" data-testid="login-error" role="alert"${message ? '' : ' hidden'}>${message ? escapeHtml(message) : ''}</p>
<script src="${LOGIN_SCRIPT_PATH}"></script>
</body>
</html>
`;
}

/** The login page's script (served as /auth/login.js). */
export const LOGIN_SCRIPT = `'use strict';
(function () {
  var form = document.querySelector('form[data-testid=login]');
  var error = document.getElementById('login-error');
  function say(text) { error.textContent = text; error.hidden = false; }
  function login(token) {
    return fetch(${JSON.stringify(LOGIN_PATH)}, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token: token }),
      credentials: 'same-origin',
    }).then(function (r) {
      // Logged in: load the address again, without the token in it (nor in the history).
      if (r.ok) location.replace(location.pathname + location.search);
      else say(r.status === 401 ? 'Wrong token.' : 'Login failed: HTTP ' + r.status);
    }, function (e) { say('Login failed: ' + e.message); });
  }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    login(new FormData(form).get('token'));
  });
  var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) login(decodeURIComponent(m[1]));
})();
`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** True for a host name (a Host header without its port) that can only be this machine. */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}
