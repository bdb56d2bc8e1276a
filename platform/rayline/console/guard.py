"""What every console route goes through (``ConsoleRoute``): the session, the checks that keep
other sites out, the security headers, and the console's own answers to errors (HTML pages, not
the API's JSON).

- No session (none, altered, expired, signed out): a page answers 303 to ``/login?next=<path>``;
  a stream or a script's request (it accepts ``text/event-stream`` or JSON) answers 401.
- Every action is a POST and is refused (403) unless it comes from the console itself: its
  ``Origin`` (or, without one, its ``Referer``) must be this host, and it must carry the session's
  CSRF token (a form's ``csrf_token`` field, or a script's ``X-CSRF-Token`` header). The cookie is
  ``SameSite=Strict`` besides, so another site's request arrives without it.
- Every answer carries a Content-Security-Policy without inline scripts or styles (the console's
  script and stylesheet are files of ``static/``), and is never framed or cached.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from rayline.api.http_errors import status_of
from rayline.console.sessions import COOKIE_NAME, Session, Sessions
from rayline.errors import NotFound, RaylineError

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
LOGIN_PATH = "/login"


class LoginRequired(Exception):
    """No valid session; ``expired``: there was one, and it has ended."""

    def __init__(self, expired: bool) -> None:
        super().__init__("sign in first")
        self.expired = expired


class CrossSiteRefused(Exception):
    """An action that did not come from the console's own pages."""


class PageNotFound(NotFound):
    """A page's subject that does not exist, said as the console says it."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"There is no {what} named {name!r}.")
        self.what = what


def sessions_of(request: Request) -> Sessions:
    return request.app.state.console.sessions


def session_of(request: Request) -> Session:
    """The request's session (a dependency of every page and action); LoginRequired otherwise."""
    cookie = request.cookies.get(COOKIE_NAME)
    session = sessions_of(request).read(cookie)
    if session is None:
        raise LoginRequired(expired=cookie is not None)
    return session


def is_https(request: Request) -> bool:
    """Served over https: directly, or behind a proxy that says so (only ever makes the cookie stricter)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def same_origin(request: Request) -> bool:
    """The request comes from a page of this host: its Origin, else its Referer, names this host.
    A client that sends neither (curl) is not a browser another site drives; its action still
    needs the CSRF token."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    parts = urlsplit(source)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def check_action(request: Request, session: Session | None, given_csrf: str | None) -> None:
    """The cross-site checks of an action (``session`` None: the sign-in form, which has none)."""
    if not same_origin(request):
        raise CrossSiteRefused()
    if session is not None and not sessions_of(request).csrf_matches(session, given_csrf):
        raise CrossSiteRefused()


def local_path(candidate: str | None) -> str:
    """Where to go after signing in: a path of this site only (never ``//host``, a scheme, or a
    backslash that a browser would read as a slash), else the overview."""
    if not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return "/"
    if any(character in candidate for character in "\\\r\n\t") or any(ord(c) < 32 for c in candidate):
        return "/"
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or parts.path.startswith(LOGIN_PATH):
        return "/"
    return candidate


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = LOGIN_PATH if here == "/" else f"{LOGIN_PATH}?next={quote(here, safe='/')}"
    return RedirectResponse(target, status_code=303)


def wants_data(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/event-stream" in accept or "application/json" in accept


class ConsoleRoute(APIRoute):
    """A console route: the answers to a missing session, a cross-site action and the platform's
    errors, as pages (see the module's docstring), and the security headers on every answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                if wants_data(request):
                    response = JSONResponse({"message": "Sign in to the console first."}, status_code=401)
                else:
                    response = login_redirect(request)
            except CrossSiteRefused:
                response = error_page(
                    request,
                    403,
                    "This action did not come from the console's own page (a cross-site request, or a page "
                    "older than your session): it was refused. Reload the page and try again.",
                )
            except RaylineError as error:
                response = error_page(request, status_of(error), error.message)
            response.headers.update(SECURITY_HEADERS)
            return response

        return console_handler


def error_page(request: Request, status: int, message: str) -> Response:
    if wants_data(request):
        return JSONResponse({"message": message}, status_code=status)
    from rayline.console.views import render

    session = sessions_of(request).read(request.cookies.get(COOKIE_NAME))
    titles = {400: "Bad request", 403: "Refused", 404: "Not found", 409: "Not now", 503: "Unavailable"}
    page = render(
        request,
        "error.html",
        session,
        title=titles.get(status, "Error"),
        status=status,
        message=message,
    )
    return HTMLResponse(page, status_code=status)
