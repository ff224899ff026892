"""The finance team's web page: an ASGI application (Starlette, Jinja2) on the CLI's database and code paths.

Every route goes through ``_page``, which sends a visitor without a session to the login page,
refuses a role below the route's, and refuses a POST whose CSRF token is not the session's.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.service import RPCError

from bankrecon.accounts import AccountDirectory, AccountsFileError
from bankrecon.bankrec.balance import BalanceStatement, BalanceUnavailable, day_balance
from bankrecon.bankrec.config import bank_accounts
from bankrecon.config import Settings
from bankrecon.models import is_statement_name
from bankrecon.ops.recon_commands import start_reconciliation
from bankrecon.recon.actions import ActionRefused, Actor, explain, pair, reopen, write_off
from bankrecon.recon.config import ReconConfigError, load_recon_config
from bankrecon.recon.export import export_run
from bankrecon.recon.models import EXCEPTION_STATES, ReconDay
from bankrecon.recon.results import (
    item_with_counterparts,
    latest_run_id,
    run_items,
    run_summary,
)
from bankrecon.sources.registry import DEFAULT_KIND
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import statements
from bankrecon.temporal.client import TemporalConnectionError, connect
from bankrecon.web import labels
from bankrecon.web.queries import (
    OPEN_ITEMS_PAGE_ROWS,
    ConfiguredAccount,
    grid_days,
    item_history,
    open_items,
    pair_candidates,
    statement_lines,
    statement_page,
    today_grid,
)
from bankrecon.web.sessions import (
    SESSION_COOKIE,
    LoginThrottle,
    Session,
    SessionCodec,
    csrf_matches,
    new_session,
    session_key,
)
from bankrecon.web.users import Role, User, authenticate, read_users

log = logging.getLogger("bankrecon.web")
OPEN_ITEMS_DAYS = 30  # the open items page without a range looks this far back, as `recon --open`
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class WebContext:
    settings: Settings
    engine: Engine
    users_file: Path
    codec: SessionCodec
    throttle: LoginThrottle
    templates: Environment
    clock: Callable[[], datetime]
    temporal: Client | None = None  # connected at the first operator's action that needs it

    def today(self) -> date:
        return self.clock().astimezone(CHINA_STANDARD_TIME).date()

    async def temporal_client(self) -> Client:
        if self.temporal is None:
            self.temporal = await connect(self.settings)
        return self.temporal


@dataclass(frozen=True)
class Visit:
    """A request of a logged-in user, with what its page needs to render."""

    request: Request
    session: Session
    user: User
    language: str
    form: FormData | None


Endpoint = Callable[[WebContext, Visit], Awaitable[Response]]


class PageError(Exception):
    """A page that cannot be given: its status, the label of what to say, and any detail to add."""

    def __init__(self, status: int, label: str, detail: str = ""):
        super().__init__(label)
        self.status, self.label, self.detail = status, label, detail


def _language(request: Request) -> str:
    return labels.language_of(request.headers.get("accept-language"), request.query_params.get("lang"))


def _secure(ctx: WebContext, request: Request) -> bool:
    return ctx.settings.web_cookie_secure or request.url.scheme == "https"


def _set_session(ctx: WebContext, request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        ctx.codec.dumps(session),
        max_age=int(ctx.codec.max_age_seconds),
        httponly=True,
        samesite="lax",
        secure=_secure(ctx, request),
        path="/",
    )


def _render(ctx: WebContext, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    language = values.pop("language", None) or _language(request)
    body = ctx.templates.get_template(name).render(
        t=labels.translator(language),
        language=language,
        money=labels.money,
        local_time=labels.local_time,
        path=request.url.path,
        query=request.url.query,
        **values,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _show(ctx: WebContext, visit: Visit, name: str, **values: Any) -> HTMLResponse:
    """A page for the visit's user, whose forms carry the session's CSRF token."""
    return _render(ctx, visit.request, name, user=visit.user, csrf=visit.session.csrf, **values)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"/login?{urlencode({'next': target})}", status_code=303, headers=SECURITY_HEADERS
    )


def _page(ctx: WebContext, role: Role, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        session = ctx.codec.loads(request.cookies.get(SESSION_COOKIE))
        users = await run_in_threadpool(read_users, ctx.users_file)
        # A user removed or demoted since logging in loses access at once.
        user = users.get(session.user) if session and session.user else None
        if session is None or user is None:
            return _login_redirect(request)
        form = None
        language = _language(request)
        if request.method == "POST":
            form = await request.form()
            if not csrf_matches(session, form.get("csrf")):
                return _render(
                    ctx, request, "error.html", 403, user=user, csrf=session.csrf, label="bad_request"
                )
        if user.role < role:
            return _render(ctx, request, "error.html", 403, user=user, csrf=session.csrf, label="forbidden")
        try:
            return await endpoint(ctx, Visit(request, session, user, language, form))
        except PageError as exc:
            return _render(
                ctx, request, "error.html", exc.status, user=user, csrf=session.csrf, label=exc.label,
                detail=exc.detail,
            )  # fmt: skip

    return handle


# --- login -------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only a path of this site: never an address elsewhere (//host, https://...).
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_form(ctx: WebContext, request: Request) -> Response:
    session = ctx.codec.loads(request.cookies.get(SESSION_COOKIE)) or new_session()
    response = _render(
        ctx, request, "login.html", csrf=session.csrf, next=_safe_next(request.query_params.get("next"))
    )
    _set_session(ctx, request, response, session)
    return response


async def login(ctx: WebContext, request: Request) -> Response:
    session = ctx.codec.loads(request.cookies.get(SESSION_COOKIE))
    form = await request.form()
    target = _safe_next(str(form.get("next") or ""))
    if not csrf_matches(session, form.get("csrf")):
        return _render(ctx, request, "error.html", 403, user=None, csrf="", label="bad_request")
    assert session is not None
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    address = request.client.host if request.client else ""
    if ctx.throttle.refused(name, address):
        log.warning("web login refused: too many failures for %r from %s", name, address)
        return _render(
            ctx, request, "login.html", 429, csrf=session.csrf, next=target, error="login_throttled"
        )
    users = await run_in_threadpool(read_users, ctx.users_file)
    user = await run_in_threadpool(authenticate, users, name, password)
    if user is None:
        ctx.throttle.failed(name, address)
        log.warning("web login failed for %r from %s", name, address)
        return _render(ctx, request, "login.html", 401, csrf=session.csrf, next=target, error="login_failed")
    ctx.throttle.succeeded(name)
    log.info("web login: %s (%s) from %s", user.name, user.role.name, address)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    # A new session (and CSRF token) at login: one planted before it is worth nothing after.
    _set_session(ctx, request, response, new_session(user.name))
    return response


async def logout(ctx: WebContext, visit: Visit) -> Response:
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


# --- pages -------------------------------------------------------------------------------------


def configured_accounts(settings: Settings, engine: Engine, days: list[date]) -> list[ConfiguredAccount]:
    """Every account the page knows of: the collected ones, the reconciled ones, and any with a
    statement in the days shown (so nothing stored is left out when the configuration is partial)."""
    # Without BANK_ACCOUNTS_FILE the accounts are BANK_ACCOUNTS of the reference bank; the page
    # needs no merchant secret to list them.
    kinds = dict.fromkeys(settings.bank_accounts, DEFAULT_KIND)
    if settings.bank_accounts_file is not None:
        try:
            directory = AccountDirectory.from_settings(settings)
            for account_no in directory.nightly_accounts():
                account = directory.account(account_no)
                kinds[account_no] = account.merchant.kind if account else DEFAULT_KIND
        except AccountsFileError as exc:
            log.warning("web: the collected accounts are not known (%s); showing those stored", exc)
    if settings.recon_config_file is not None:
        try:
            for account_no in load_recon_config(settings.recon_config_file).accounts:
                kinds.setdefault(account_no, "channel")
        except ReconConfigError as exc:
            log.warning("web: %s", exc)
    s = statements.c
    with engine.connect() as conn:
        for stored in conn.execute(
            statements.select()
            .with_only_columns(s.account_no, s.source_kind)
            .where(s.bill_date.between(min(days), max(days)))
            .distinct()
        ):
            kinds.setdefault(stored.account_no, stored.source_kind)
    return [ConfiguredAccount(account_no, kind) for account_no, kind in sorted(kinds.items())]


async def today_page(ctx: WebContext, visit: Visit) -> Response:
    days = grid_days(ctx.today())
    accounts = await run_in_threadpool(configured_accounts, ctx.settings, ctx.engine, days)
    kind = visit.request.query_params.get("kind", "")
    attention = visit.request.query_params.get("attention") == "1"
    shown = [a for a in accounts if not kind or a.kind == kind]
    rows = await run_in_threadpool(today_grid, ctx.engine, shown, days)
    if attention:
        rows = [row for row in rows if row.needs_attention]
    return _show(
        ctx,
        visit,
        "today.html",
        days=days,
        rows=rows,
        kinds=sorted({a.kind for a in accounts}),
        kind=kind,
        attention=attention,
    )


def _day_of(visit: Visit) -> ReconDay:
    account_no = visit.request.path_params["account"]
    try:
        day = date.fromisoformat(visit.request.path_params["day"])
    except ValueError:
        raise PageError(404, "not_found") from None
    if not is_statement_name(account_no):
        raise PageError(404, "not_found")
    return ReconDay(account_no=account_no, recon_date=day)


async def day_page(ctx: WebContext, visit: Visit) -> Response:
    day = _day_of(visit)

    def read() -> tuple[Any, list[Any], bool, BalanceStatement | None]:
        with ctx.engine.connect() as conn:
            stored = conn.execute(
                statements.select()
                .with_only_columns(statements.c.account_no)
                .where(statements.c.account_no == day.account_no, statements.c.bill_date == day.recon_date)
            ).first()
        if _is_bank_account(ctx, day.account_no):
            # A bank account's day is its 余额调节表, the same as `bankrecon recon balance`.
            try:
                balance = day_balance(ctx.engine, day.account_no, day.recon_date)
            except BalanceUnavailable:
                balance = None
            return None, [], stored is not None, balance
        run_id = latest_run_id(ctx.engine, day)
        summary = run_summary(ctx.engine, run_id) if run_id else None
        exceptions = run_items(ctx.engine, run_id, exceptions_only=True) if run_id else []
        return summary, exceptions, stored is not None, None

    summary, exceptions, has_statement, balance = await run_in_threadpool(read)
    return _show(
        ctx,
        visit,
        "day.html",
        day=day,
        summary=summary,
        exceptions=exceptions,
        has_statement=has_statement,
        balance=balance,
        may_act=visit.user.role >= Role.accountant,
        noted=visit.request.query_params.get("noted"),
        acted=visit.request.query_params.get("acted"),
        rerun=visit.request.query_params.get("rerun"),
        may_rerun=visit.user.role >= Role.operator,
        today=ctx.today(),
    )


def _is_bank_account(ctx: WebContext, account_no: str) -> bool:
    try:
        return account_no in bank_accounts(ctx.settings.recon_config_file)
    except ReconConfigError:
        return False


def _done(visit: Visit, what: str, account_no: str, day: date, flash: dict[str, str]) -> Response:
    """An action done: recorded with its user, and back to its day's page, which says so."""
    log.info("web action: %s (%s) %s of %s %s", visit.user.name, visit.user.role.name, what, account_no, day)
    target = f"/day/{quote(account_no)}/{day}?{urlencode(flash)}"
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _reconciled_channel(ctx: WebContext, day: ReconDay) -> None:
    try:
        load_recon_config(ctx.settings.recon_config_file).channel(day.account_no)
    except ReconConfigError as exc:
        raise PageError(400, "bad_request", str(exc)) from None


async def rerun_form(ctx: WebContext, visit: Visit) -> Response:
    day = _day_of(visit)
    _reconciled_channel(ctx, day)
    return _show(ctx, visit, "rerun.html", day=day)


async def rerun_action(ctx: WebContext, visit: Visit) -> Response:
    """The day reconciled again now, as `bankrecon recon ACCOUNT DATE --rerun` starts it."""
    day = _day_of(visit)
    _reconciled_channel(ctx, day)
    try:
        client = await ctx.temporal_client()
        handle = await start_reconciliation(client, ctx.settings, day.account_no, day.recon_date, rerun=True)
    except (TemporalConnectionError, RPCError) as exc:
        log.warning("web re-run of %s %s not started: %s", day.account_no, day.recon_date, exc)
        raise PageError(503, "temporal_unreachable") from None
    what = f"re-ran the day as {handle.id} run {handle.result_run_id}"
    return _done(visit, what, day.account_no, day.recon_date, {"rerun": handle.result_run_id or ""})


def _item_id(visit: Visit) -> int:
    text = visit.request.path_params["item_id"]
    if not text.isdigit() or len(text) > 18:
        raise PageError(404, "not_found")
    return int(text)


async def item_page(ctx: WebContext, visit: Visit) -> Response:
    """One line of a run: both sides' lines of its reference, its rule, its age, its note; and the
    channel's statement line it came from."""
    found = await run_in_threadpool(item_with_counterparts, ctx.engine, _item_id(visit))
    if not found:
        raise PageError(404, "not_found")
    item = found[0]
    lines = await run_in_threadpool(
        statement_lines,
        ctx.engine,
        item.account_no,
        [(i.booked_on, i.line_ref) for i in found if i.side == "channel"],
    )
    may_act = visit.user.role >= Role.accountant and item.state in EXCEPTION_STATES
    candidates = await run_in_threadpool(pair_candidates, ctx.engine, item) if may_act else []
    history = await run_in_threadpool(item_history, ctx.engine, item)
    return _show(
        ctx, visit, "item.html", item=item, others=found[1:], lines=lines, today=ctx.today(),
        may_act=may_act, candidates=candidates, history=history,
    )  # fmt: skip


async def note_action(ctx: WebContext, visit: Visit) -> Response:
    assert visit.form is not None
    item_id = _item_id(visit)
    note = str(visit.form.get("note") or "")
    try:
        # The same operation as `bankrecon recon explain ITEM_ID --note TEXT`.
        item = await run_in_threadpool(
            explain, ctx.engine, item_id, note, Actor(by=visit.user.name, at=ctx.clock())
        )
    except ActionRefused as exc:
        raise PageError(400, "bad_request", str(exc)) from None
    what = f"noted item {item.item_id}"
    return _done(visit, what, item.account_no, item.recon_date, {"noted": str(item.item_id)})


def _form_text(visit: Visit, name: str) -> str:
    assert visit.form is not None
    return str(visit.form.get(name) or "")


async def _act(ctx: WebContext, visit: Visit, what: str, work: Callable[[Actor], Any]) -> Response:
    """Do one of the CLI's actions on an exception as the logged-in user; back to its day."""
    item_id = _item_id(visit)
    found = await run_in_threadpool(item_with_counterparts, ctx.engine, item_id)
    if not found:
        raise PageError(404, "not_found")
    try:
        await run_in_threadpool(work, Actor(by=visit.user.name, at=ctx.clock()))
    except ActionRefused as exc:
        raise PageError(400, "bad_request", str(exc)) from None
    item = found[0]
    return _done(visit, f"{what} item {item_id}", item.account_no, item.recon_date, {"acted": str(item_id)})


async def write_off_action(ctx: WebContext, visit: Visit) -> Response:
    # The same operation as `bankrecon recon write-off ITEM_ID --reason TEXT [--account ACCOUNT]`.
    reason, account = _form_text(visit, "reason"), _form_text(visit, "ledger_account").strip() or None
    item_id = _item_id(visit)
    return await _act(
        ctx, visit, "wrote off", lambda actor: write_off(ctx.engine, item_id, reason, actor, account)
    )


async def reopen_action(ctx: WebContext, visit: Visit) -> Response:
    # The same operation as `bankrecon recon reopen ITEM_ID --reason TEXT`.
    reason, item_id = _form_text(visit, "reason"), _item_id(visit)
    return await _act(ctx, visit, "reopened", lambda actor: reopen(ctx.engine, item_id, reason, actor))


async def pair_action(ctx: WebContext, visit: Visit) -> Response:
    # The same operation as `bankrecon recon pair ITEM_ID ITEM_ID --reason TEXT [--allow-difference]`.
    reason, item_id, other = _form_text(visit, "reason"), _item_id(visit), _form_text(visit, "other")
    if not other.isdigit() or len(other) > 18:
        raise PageError(400, "bad_request", "pick the item to pair it with")
    allow = _form_text(visit, "allow_difference") == "yes"
    return await _act(
        ctx, visit, "paired", lambda actor: pair(ctx.engine, (item_id, int(other)), reason, actor, allow)
    )


async def export_download(ctx: WebContext, visit: Visit) -> Response:
    day = _day_of(visit)
    suffix = visit.request.path_params["suffix"]
    if suffix not in ("csv", "xlsx"):
        raise PageError(404, "not_found")
    run_id = await run_in_threadpool(latest_run_id, ctx.engine, day)
    summary = await run_in_threadpool(run_summary, ctx.engine, run_id) if run_id else None
    if summary is None:
        raise PageError(404, "not_reconciled")
    directory = Path(tempfile.mkdtemp(prefix="bankrecon-web-export-"))
    # The same files as `bankrecon recon ACCOUNT DATE --export DIR`.
    # Ages counted to the report's day as the CLI counts them: the day before today in China.
    as_of = ctx.today() - timedelta(days=1)
    csv_path, xlsx_path = await run_in_threadpool(export_run, ctx.engine, summary, directory, as_of)
    path = csv_path if suffix == "csv" else xlsx_path
    media = (
        "text/csv; charset=utf-8"
        if suffix == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return FileResponse(
        path,
        media_type=media,
        filename=path.name,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True),
    )


def _date_param(visit: Visit, name: str, default: date) -> date:
    text = visit.request.query_params.get(name)
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PageError(400, "bad_request") from None


async def open_items_page(ctx: WebContext, visit: Visit) -> Response:
    params = visit.request.query_params
    last = _date_param(visit, "to", ctx.today())
    first = _date_param(visit, "from", last - timedelta(days=OPEN_ITEMS_DAYS))
    if first > last:
        raise PageError(400, "bad_request")
    account = params.get("account", "").strip()
    if account and not is_statement_name(account):
        raise PageError(400, "bad_request")
    order = params.get("sort", "date")
    items = await run_in_threadpool(open_items, ctx.engine, first, last, account, ctx.today(), order)
    pages = max(1, -(-len(items) // OPEN_ITEMS_PAGE_ROWS))
    try:
        page = min(max(1, int(params.get("page", "1"))), pages)
    except ValueError:
        page = 1
    bands: dict[tuple[str, str], list[Any]] = {}
    for found in items:
        count_amount = bands.setdefault((found.item.account_no, found.band), [0, 0])
        count_amount[0] += 1
        count_amount[1] += found.item.amount
    return _show(
        ctx,
        visit,
        "open.html",
        first=first,
        last=last,
        account=account,
        order=order,
        items=items[(page - 1) * OPEN_ITEMS_PAGE_ROWS : page * OPEN_ITEMS_PAGE_ROWS],
        total=len(items),
        page=page,
        pages=pages,
        bands=sorted(bands.items()),
    )


async def statement_view(ctx: WebContext, visit: Visit) -> Response:
    day = _day_of(visit)
    search = visit.request.query_params.get("q", "")
    try:
        page = int(visit.request.query_params.get("page", "1"))
    except ValueError:
        page = 1
    found = await run_in_threadpool(statement_page, ctx.engine, day.account_no, day.recon_date, search, page)
    if found is None:
        raise PageError(404, "no_statement")
    return _show(ctx, visit, "statement.html", day=day, found=found, search=search)


def create_app(settings: Settings, engine: Engine, clock: Callable[[], datetime] | None = None) -> Starlette:
    if settings.web_users_file is None:
        raise ValueError("WEB_USERS_FILE is not set: the web page serves only the users listed there")
    ctx = WebContext(
        settings=settings,
        engine=engine,
        users_file=settings.web_users_file,
        codec=SessionCodec(session_key(settings), settings.web_session_hours * 3600),
        throttle=LoginThrottle(),
        templates=Environment(
            loader=PackageLoader("bankrecon.web", "templates"),
            autoescape=select_autoescape(default=True),
        ),
        clock=clock or (lambda: datetime.now(UTC)),
    )

    def bound(endpoint: Callable[[WebContext, Request], Awaitable[Response]]) -> Any:
        async def handle(request: Request) -> Response:
            return await endpoint(ctx, request)

        return handle

    viewer, accountant, operator = Role.viewer, Role.accountant, Role.operator
    routes = [
        Route("/login", bound(login_form), methods=["GET"]),
        Route("/login", bound(login), methods=["POST"]),
        Route("/logout", _page(ctx, viewer, logout), methods=["POST"]),
        Route("/", _page(ctx, viewer, today_page), methods=["GET"]),
        Route("/day/{account}/{day}", _page(ctx, viewer, day_page), methods=["GET"]),
        Route("/day/{account}/{day}/export.{suffix}", _page(ctx, viewer, export_download), methods=["GET"]),
        Route("/day/{account}/{day}/rerun", _page(ctx, operator, rerun_form), methods=["GET"]),
        Route("/day/{account}/{day}/rerun", _page(ctx, operator, rerun_action), methods=["POST"]),
        Route("/items/{item_id}", _page(ctx, viewer, item_page), methods=["GET"]),
        Route("/items/{item_id}/note", _page(ctx, accountant, note_action), methods=["POST"]),
        Route("/items/{item_id}/write-off", _page(ctx, accountant, write_off_action), methods=["POST"]),
        Route("/items/{item_id}/reopen", _page(ctx, accountant, reopen_action), methods=["POST"]),
        Route("/items/{item_id}/pair", _page(ctx, accountant, pair_action), methods=["POST"]),
        Route("/open", _page(ctx, viewer, open_items_page), methods=["GET"]),
        Route("/statement/{account}/{day}", _page(ctx, viewer, statement_view), methods=["GET"]),
    ]
    return Starlette(routes=routes)
