"""What every console route goes through (``ConsoleRoute``): the session, the checks that keep
other sites out, the security headers, and the console's own answers to errors (HTML pages, not
the API's JSON).

- No session (none, malformed, altered, expired, signed out): a page answers 303 to
  ``/login?next=<path>``; an action (a POST) to ``/login?next=<the page it belongs to>`` (never
  the action itself: signing in follows ``next`` with a GET); a stream or a script's request (it
  accepts ``text/event-stream`` or JSON) answers 401.
- Every action is a POST and is refused (403) unless it comes from the console itself: its
  ``Origin`` (or, without one, its ``Referer``) must be this console's own origin, scheme, host
  and port, as the request arrived at the proxy in front (``X-Forwarded-Proto`` and
  ``X-Forwarded-Host`` when one says so, else this request's scheme and ``Host``: plain http on
  127.0.0.1:<port> matches itself); and it must carry the session's CSRF token (a form's
  ``csrf_token`` field, or a script's ``X-CSRF-Token`` header). The cookie is ``SameSite=Strict``
  besides, so another site's request arrives without it.
- Every answer carries a Content-Security-Policy without inline scripts or styles (the console's
  script and stylesheet are files of ``static/``), and is never framed or cached. That includes
  the errors raised before or around a console route: a wrong method (405), a request FastAPI
  could not read (bad query parameters, a form with a file: 400), an unknown path outside
  ``/api`` and ``/endpoints`` (404) are the console's error page (``install_error_pages``); under
  those two prefixes the API keeps its JSON answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

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
DEFAULT_PORTS = {"http": 80, "https": 443}
# Paths that are not the console's: their errors stay the API's JSON.
NOT_CONSOLE_PREFIXES = ("/api", "/endpoints")


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


def _first(header: str) -> str:
    """The first value of a header a chain of proxies may have appended to (``a, b``)."""
    return header.split(",", 1)[0].strip()


def is_https(request: Request) -> bool:
    """Served over https: directly, or behind a proxy that says so (only ever makes the cookie stricter)."""
    return request.url.scheme == "https" or _first(request.headers.get("x-forwarded-proto", "")).lower() == "https"


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port made explicit; None for anything else
    (``null``, another scheme, no host, a bad port)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def own_origin(request: Request) -> tuple[str, str, int] | None:
    """This console's origin as the browser sees it: behind a proxy, the scheme and host it was
    asked with (``X-Forwarded-Proto``, ``X-Forwarded-Host``); else this request's own. A page
    cannot set these headers on another site's request, so trusting them keeps nobody out
    that SameSite and the CSRF token let in."""
    scheme = "https" if is_https(request) else "http"
    host = _first(request.headers.get("x-forwarded-host", "")) or request.headers.get("host", "")
    return origin_of(f"{scheme}://{host}") if host else None


def same_origin(request: Request) -> bool:
    """The request comes from a page of this console: its Origin, else its Referer, has the
    console's own scheme, host and port (``own_origin``). A client that sends neither (curl) is
    not a browser another site drives; its action still needs the CSRF token."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    own = own_origin(request)
    return own is not None and origin_of(source) == own


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


def page_of_action(request: Request) -> str:
    """The page an action (a POST) belongs to, where to come back after signing in: a
    deployment's page for a deployment's actions, else the overview."""
    name = request.path_params.get("name")
    if isinstance(name, str) and name and request.url.path.startswith("/deployments/"):
        return f"/deployments/{quote(name, safe='')}"
    return "/"


def login_redirect(request: Request) -> RedirectResponse:
    if request.method in ("GET", "HEAD"):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:  # signing in follows next with a GET: never to an action, always to its page
        here = page_of_action(request)
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
            except RequestValidationError:
                response = error_page(request, 400, BAD_REQUEST)
            except HTTPException as error:  # a form FastAPI could not read (a file in it...)
                response = http_error_page(request, error)
            response.headers.update(SECURITY_HEADERS)
            return response

        return console_handler


BAD_REQUEST = "This request could not be read (a parameter or a form field is not what this page takes)."
HTTP_MESSAGES = {
    400: BAD_REQUEST,
    404: "There is no such page in the console.",
    405: "This address does not take that method: an action is a button of a page, not a link.",
}


def http_error_page(request: Request, error: HTTPException) -> Response:
    """A Starlette HTTPException (routing's 404 and 405, a body it could not parse) as a page."""
    message = HTTP_MESSAGES.get(error.status_code) or str(error.detail)
    response = error_page(request, error.status_code, message)
    response.headers.update({key: value for key, value in (error.headers or {}).items() if key.lower() == "allow"})
    response.headers.update(SECURITY_HEADERS)
    return response


def is_console_path(path: str) -> bool:
    return not any(path == prefix or path.startswith(prefix + "/") for prefix in NOT_CONSOLE_PREFIXES)


def install_error_pages(app: FastAPI) -> None:
    """The console's error page for the HTTPExceptions raised outside its routes' handlers (no
    route at that path: 404; a route, not for that method: 405; the static files' 404), at
    paths that are not the API's; the API's own handler answers the others, as before."""
    api_handler = app.exception_handlers.get(HTTPException)

    async def console_or_api(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if is_console_path(request.url.path) or api_handler is None:
            return http_error_page(request, error)
        answer = api_handler(request, error)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(HTTPException, console_or_api)


def optional_session(request: Request) -> Session | None:
    """The request's session or None, never raising (an error page shows whatever it can)."""
    try:
        return sessions_of(request).read(request.cookies.get(COOKIE_NAME))
    except Exception:  # no secret key (an app built for the API's tests), the database away
        return None


def error_page(request: Request, status: int, message: str) -> Response:
    if wants_data(request):
        return JSONResponse({"message": message}, status_code=status)
    from rayline.console.views import render

    session = optional_session(request)
    titles = {
        400: "Bad request",
        403: "Refused",
        404: "Not found",
        405: "Not allowed",
        409: "Not now",
        413: "Too large",
        503: "Unavailable",
    }
    page = render(
        request,
        "error.html",
        session,
        title=titles.get(status, "Error"),
        status=status,
        message=message,
    )
    return HTMLResponse(page, status_code=status)
