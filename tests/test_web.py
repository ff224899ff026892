"""The finance team's web page over real HTTP (uvicorn in a thread) on SQLite and PostgreSQL: login,
sessions, CSRF and roles route by route, the Today grid, a day with its note action, open items, exports
and a statement; and `bankrecon web` with its user commands as a process."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import openpyxl
import pytest

from bankrecon.ops.recon_commands import report_day
from bankrecon.recon.demo import DEMO_CHANNEL
from bankrecon.recon.export import export_run
from bankrecon.recon.models import EXCEPTION_STATES, ReconDay
from bankrecon.recon.results import latest_run_id, open_exceptions, run_summary
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from bankrecon.web import labels
from bankrecon.web.app import create_app
from bankrecon.web.sessions import FAILURES_PER_USER, SESSION_COOKIE
from bankrecon.web.users import Role, add_user, read_users, remove_user
from tests.web_setup import (
    FAILING_BANK,
    PASSWORDS,
    ROOT,
    SETTLING_BANK,
    WAITING_BANK,
    Site,
    csrf_of,
    free_port,
    login,
    serve,
    site_fixture,  # noqa: F401 (the fixture `site`)
    today,
    web_settings,
)

# Every route but the login page's, with the least role that may use it.
ACCESS = {
    ("GET", "/"): Role.viewer,
    ("GET", "/day/{account}/{day}"): Role.viewer,
    ("GET", "/day/{account}/{day}/export.{suffix}"): Role.viewer,
    ("GET", "/open"): Role.viewer,
    ("GET", "/statement/{account}/{day}"): Role.viewer,
    ("GET", "/day/{account}/{day}/rerun"): Role.operator,
    ("POST", "/day/{account}/{day}/rerun"): Role.operator,
    ("GET", "/items/{item_id}"): Role.viewer,
    ("POST", "/items/{item_id}/note"): Role.accountant,
    ("POST", "/items/{item_id}/write-off"): Role.accountant,
    ("POST", "/items/{item_id}/reopen"): Role.accountant,
    ("POST", "/items/{item_id}/pair"): Role.accountant,
    ("POST", "/logout"): Role.viewer,
}


def _concrete(site: Site, path: str) -> str:
    item_id = site.exceptions()[0].item_id
    return path.format(account=DEMO_CHANNEL, day=site.day.isoformat(), suffix="xlsx", item_id=item_id)


def test_every_route_has_an_access_rule(site: Site) -> None:
    served = {
        (method, route.path)
        for route in site.app.routes
        for method in route.methods - {"HEAD"}
        if route.path != "/login"
    }
    assert served == set(ACCESS)


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
def test_nothing_is_served_without_login(site: Site, method: str, path: str) -> None:
    with site.client() as client:
        answer = client.request(method, _concrete(site, path), data={"note": "sneaked in"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")
        # A forged or expired cookie is no session either.
        client.cookies.set(SESSION_COOKIE, "eyJ1c2VyIjoib3BlcmF0b3IifQ.forged.signature")
        assert client.request(method, _concrete(site, path)).status_code == 303
    assert all(item.note is None for item in site.exceptions())


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_each_route_is_refused_below_its_role(site: Site, role: Role) -> None:
    with site.logged_in(role) as client:
        token = csrf_of(client.get("/"))
        for (method, path), least in sorted(ACCESS.items()):
            acts = path.endswith(("/rerun", "/write-off", "/reopen", "/pair"))
            if path == "/logout" or (method == "POST" and acts and role >= least):
                continue  # ends the session, starts a workflow or resolves: each has its own test
            answer = client.request(
                method, _concrete(site, path), data={"csrf": token, "note": f"by {role.name}"}
            )
            if role >= least:
                assert answer.status_code in (200, 303), (method, path, answer.status_code)
            else:
                assert answer.status_code == 403, (method, path)
                assert "Your role may not do this" in answer.text
    notes = [item.note for item in site.exceptions() if item.note]
    assert notes == ([] if role < Role.accountant else [f"by {role.name}"])


def test_a_post_without_the_sessions_csrf_token_changes_nothing(site: Site) -> None:
    item = site.exceptions()[0]
    with site.logged_in(Role.accountant) as client, site.logged_in(Role.accountant) as other:
        others_token = csrf_of(other.get("/"))
        for data in ({"note": "no token"}, {"note": "another session's", "csrf": others_token}):
            answer = client.post(f"/items/{item.item_id}/note", data=data)
            assert answer.status_code == 403
            assert "Bad request" in answer.text
        assert all(i.note is None for i in site.exceptions())
        answer = client.post(
            f"/items/{item.item_id}/note",
            data={"note": "refund booked late", "csrf": csrf_of(client.get("/"))},
        )
        assert answer.status_code == 303
    assert [i.note for i in site.exceptions() if i.item_id == item.item_id] == ["refund booked late"]


def test_logout_needs_its_token_and_ends_the_session(site: Site) -> None:
    with site.logged_in(Role.viewer) as client:
        assert client.post("/logout", data={}).status_code == 403
        assert client.get("/").status_code == 200
        answer = client.post("/logout", data={"csrf": csrf_of(client.get("/"))})
        assert answer.status_code == 303
        assert client.get("/").status_code == 303


def test_login_says_the_same_for_a_wrong_name_and_a_wrong_password(site: Site) -> None:
    with site.client() as client:
        wrong_name = login(client, "nobody", PASSWORDS[Role.viewer])
        wrong_password = login(client, "viewer", "not-the-password")
        assert wrong_name.status_code == wrong_password.status_code == 401
        message = re.compile(r'<p class="error" role="alert">(.*?)</p>')
        assert (
            message.findall(wrong_name.text)
            == message.findall(wrong_password.text)
            == ["Wrong name or password"]
        )
        assert client.get("/").status_code == 303


def test_the_session_cookie_is_signed_httponly_and_lax(site: Site) -> None:
    with site.client() as client:
        answer = login(client, "viewer", PASSWORDS[Role.viewer])
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
        assert f"Max-Age={8 * 3600}" in cookie
        # The same cookie with one character changed is no session.
        value = client.cookies[SESSION_COOKIE]
        client.cookies.set(SESSION_COOKIE, value[:-1] + ("A" if value[-1] != "A" else "B"))
        assert client.get("/").status_code == 303


def test_cookies_are_secure_with_web_cookie_secure(database_url: str, tmp_path: Path) -> None:
    settings = web_settings(tmp_path, database_url, None, web_cookie_secure=True)
    assert settings.web_users_file is not None
    add_user(settings.web_users_file, "viewer", PASSWORDS[Role.viewer], Role.viewer)
    engine = make_engine(database_url)
    prepare_schema(engine)
    try:
        with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url) as client:
            answer = client.get("/login")
            assert "Secure" in answer.headers["set-cookie"]
    finally:
        engine.dispose()


def test_logins_are_throttled_per_user(site: Site) -> None:
    with site.client() as client:
        for _ in range(FAILURES_PER_USER):
            assert login(client, "operator", "wrong-password").status_code == 401
        # Even the right password now waits; another user is not held up.
        throttled = login(client, "operator", PASSWORDS[Role.operator])
        assert throttled.status_code == 429
        assert "Too many failed logins" in throttled.text
        assert login(client, "viewer", PASSWORDS[Role.viewer]).status_code == 303


def test_a_removed_user_is_out_at_the_next_request(site: Site) -> None:
    with site.logged_in(Role.accountant) as client:
        assert client.get("/").status_code == 200
        assert site.settings.web_users_file is not None
        remove_user(site.settings.web_users_file, "accountant")
        assert client.get("/").status_code == 303


def test_a_login_goes_back_only_to_a_page_of_this_site(site: Site) -> None:
    with site.client() as client:
        token = csrf_of(client.get("/login"))
        answer = client.post(
            "/login",
            data={
                "csrf": token,
                "name": "viewer",
                "password": PASSWORDS[Role.viewer],
                "next": "//evil.example/",
            },
        )
        assert answer.headers["location"] == "/"


def test_today_shows_each_account_by_day(site: Site) -> None:
    with site.logged_in(Role.viewer) as client:
        page = client.get("/", headers={"Accept-Language": "en"}).text
        open_items = [i for i in site.exceptions() if i.note is None]
        total = sum((i.amount for i in open_items), Decimal("0.00"))
        cell = _cell(page, DEMO_CHANNEL, site.day)
        assert "Collected: 13 rows" in cell
        assert f"{len(open_items)} open exceptions, {labels.money(total)}" in cell
        assert "Failed: bank answered 1003 &lt;account closed&gt;" in _cell(page, FAILING_BANK, site.day)
        assert "Waiting: 2001, 3 attempts" in _cell(page, WAITING_BANK, site.day)
        assert "Nothing yet" in _cell(page, SETTLING_BANK, site.day)
        attention = client.get("/?attention=1").text
        assert DEMO_CHANNEL in attention and FAILING_BANK in attention
        assert SETTLING_BANK not in attention
        only_refbank = client.get("/?kind=refbank").text
        assert FAILING_BANK in only_refbank and f"<th>{DEMO_CHANNEL}</th>" not in only_refbank


def _cell(page: str, account_no: str, day: date) -> str:
    row = page[page.index(f"<th>{account_no}</th>") :]
    row = row[: row.index("</tr>")]
    cell = row[row.index(f'data-day="{day.isoformat()}"') :]
    return re.sub(r"\s+", " ", cell[: cell.index("</td>")])


def test_labels_follow_the_browser_and_money_has_separators(site: Site) -> None:
    with site.logged_in(Role.viewer) as client:
        chinese = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
        assert "已收取: 13 笔" in " ".join(chinese.split())
        english = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"}).text
        assert "Collected" in english and "已收取" not in english
        assert "已收取" in client.get("/?lang=zh", headers={"Accept-Language": "en"}).text
    assert labels.money(Decimal("1234567.80")) == "1,234,567.80"
    assert labels.money(Decimal("-0.50")) == "-0.50"
    assert labels.local_time(datetime(2026, 12, 1, 16, 30, tzinfo=UTC)) == "2026-12-02 00:30:00"


def test_a_day_shows_its_summary_and_exceptions_and_takes_a_note(site: Site) -> None:
    exceptions = site.exceptions()
    assert {item.state for item in exceptions} <= set(EXCEPTION_STATES)
    target = next(item for item in exceptions if item.state == "duplicate")
    path = f"/day/{DEMO_CHANNEL}/{site.day}"
    with site.logged_in(Role.accountant) as client:
        page = client.get(path, headers={"Accept-Language": "en"}).text
        assert page.count('<tr id="item-') == len(exceptions)
        summary = run_summary(site.engine, exceptions[0].run_id)
        assert summary is not None
        for total in summary.totals:
            assert f'<td class="money">{labels.money(total.amount)}</td>' in page
        answer = client.post(
            f"/items/{target.item_id}/note",
            data={"csrf": csrf_of(client.get(path)), "note": "<b>charged twice</b>, refund asked"},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{path}?noted={target.item_id}"
        shown = client.get(answer.headers["location"]).text
        # Shown escaped, never as markup.
        assert "&lt;b&gt;charged twice&lt;/b&gt;, refund asked" in shown
        assert "<b>charged twice</b>" not in shown
        empty = client.post(
            f"/items/{target.item_id}/note", data={"csrf": csrf_of(client.get(path)), "note": " "}
        )
        assert empty.status_code == 400
    # The CLI's open items list it as explained, with the note and who wrote it: the same
    # action as `recon explain`.
    still_open = {
        item.item_id: item for item in open_exceptions(site.engine, site.day, site.day, DEMO_CHANNEL)
    }
    assert len(still_open) == len(exceptions)
    noted = still_open[target.item_id]
    assert (noted.status, noted.note) == ("explained", "<b>charged twice</b>, refund asked")
    assert noted.last_action == "explain" and noted.last_by == Role.accountant.name


def test_an_exception_opens_both_sides_and_its_statement_line(site: Site) -> None:
    channel, ledger = sorted(
        (item for item in site.exceptions() if item.reference == "O-009"), key=lambda item: item.side
    )
    assert (channel.side, ledger.side) == ("channel", "ledger")
    with site.logged_in(Role.viewer) as client:
        page = client.get(f"/items/{ledger.item_id}", headers={"Accept-Language": "en"}).text
        sides = page.split('id="sides"')[1].split("</table>")[0]
        assert sides.count("<tr") == 3  # the heading, the ledger's line, the channel's
        assert '<td class="money">120.00</td>' in sides and '<td class="money">112.00</td>' in sides
        line = page.split('id="statement-lines"')[1].split("</table>")[0]
        assert f"<td>{channel.line_ref}</td>" in line and '<td class="money">112.00</td>' in line
        assert f"Age {(today() - site.day).days} days" in page
        assert 'name="note"' not in page  # a viewer's page has no form to act with
        assert client.get("/items/999999999").status_code == 404
        assert client.get("/items/1e3").status_code == 404
    with site.logged_in(Role.accountant) as client:
        assert 'name="note"' in client.get(f"/items/{ledger.item_id}").text


def test_the_day_downloads_are_the_export_files(site: Site, tmp_path: Path) -> None:
    run_id = latest_run_id(site.engine, ReconDay(account_no=DEMO_CHANNEL, recon_date=site.day))
    assert run_id is not None
    summary = run_summary(site.engine, run_id)
    assert summary is not None
    csv_path, xlsx_path = export_run(site.engine, summary, tmp_path / "cli-export", report_day())
    with site.logged_in(Role.viewer) as client:
        got_csv = client.get(f"/day/{DEMO_CHANNEL}/{site.day}/export.csv")
        got_xlsx = client.get(f"/day/{DEMO_CHANNEL}/{site.day}/export.xlsx")
        assert client.get(f"/day/{DEMO_CHANNEL}/{site.day - timedelta(days=3)}/export.csv").status_code == 404
    assert got_csv.status_code == got_xlsx.status_code == 200
    assert f'filename="{csv_path.name}"' in got_csv.headers["content-disposition"]
    assert got_csv.content == csv_path.read_bytes()
    rows = list(csv.reader(io.StringIO(got_csv.content.decode("utf-8-sig"))))
    assert len(rows) == 1 + sum(total.lines for total in summary.totals)
    downloaded = openpyxl.load_workbook(io.BytesIO(got_xlsx.content))
    exported = openpyxl.load_workbook(xlsx_path)
    assert downloaded.sheetnames == exported.sheetnames
    for name in exported.sheetnames:
        assert list(downloaded[name].values) == list(exported[name].values)


def test_open_items_are_those_of_recon_open(site: Site) -> None:
    expected = open_exceptions(site.engine, site.day - timedelta(days=30), today(), None)
    assert expected
    with site.logged_in(Role.viewer) as client:
        page = client.get("/open", headers={"Accept-Language": "en"}).text
        assert f"Exceptions ({len(expected)})" in page
        assert page.count("<tr>") - page.count("<thead><tr>") >= len(expected)
        by_amount = client.get("/open?sort=amount").text
        amounts = [
            Decimal(a.replace(",", ""))
            for a in re.findall(
                r'<td class="money">([\d,]+\.\d\d)</td>', by_amount.split('id="open-items"')[1]
            )
        ]
        assert amounts[0] == max(item.amount for item in expected)
        elsewhere = client.get(f"/open?account=6222029999999999&to={site.day}").text
        assert "No open exceptions in this range" in elsewhere
        assert client.get("/open?from=2026-12-09&to=2026-12-01").status_code == 400
        assert client.get("/open?account=' OR 1=1 --").status_code == 400


def test_a_statement_is_paged_and_searchable(site: Site) -> None:
    path = f"/statement/{DEMO_CHANNEL}/{site.day}"
    with site.logged_in(Role.viewer) as client:
        page = client.get(path, headers={"Accept-Language": "en"}).text
        assert "13 rows" in page
        assert page.count("<tr><td>") == 13
        assert client.get(path, params={"q": "O-006"}).text.count("<tr><td>") == 2
        assert client.get(path, params={"q": "90.00"}).text.count("<tr><td>") == 1
        # LIKE's wildcards are searched for as themselves.
        assert client.get(path, params={"q": "%"}).text.count("<tr><td>") == 0
        assert client.get(path, params={"q": "_"}).text.count("<tr><td>") == 0
        assert client.get(f"/statement/{DEMO_CHANNEL}/{site.day - timedelta(days=3)}").status_code == 404


def _cli(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bankrecon.ops.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_bankrecon_web_manages_users_and_serves(sqlite_url: str, tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WEB_", "DATABASE_", "BANK_"))},
        "PYTHONPATH": str(ROOT),
        "WEB_USERS_FILE": str(users_file),
        "DATABASE_URL": sqlite_url,
        "DATA_DIR": str(tmp_path / "data"),
    }
    refused = _cli(["web", "add-user", "li.na", "--role", "accountant"], env, "secret-one-1\nsecret-two-2\n")
    assert refused.returncode == 2
    assert "the two passwords differ" in refused.stderr
    assert not users_file.exists()
    added = _cli(["web", "add-user", "li.na", "--role", "accountant"], env, "secret-one-1\nsecret-one-1\n")
    assert added.returncode == 0, added.stderr
    user = read_users(users_file)["li.na"]
    assert user.role is Role.accountant and user.password_hash.startswith("$argon2id$")
    assert "secret-one-1" not in users_file.read_text(encoding="utf-8")
    assert users_file.stat().st_mode & 0o077 == 0
    assert _cli(["web", "add-user", "ops", "--role", "root"], env, "x\nx\n").returncode == 2

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bankrecon.ops.cli", "web", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
        assert first_line == f"bankrecon web on http://127.0.0.1:{port}/ (1 users)\n"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    client.get("/login")
                    break
                except httpx.ConnectError:
                    threading.Event().wait(0.1)
            assert client.get("/").status_code == 303
            # Behind a TLS proxy on this host, its X-Forwarded-Proto makes the cookie Secure.
            assert "Secure" not in client.get("/login").headers["set-cookie"]
            proxied = client.get("/login", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" in proxied.headers["set-cookie"]
            client.cookies.clear()
            assert login(client, "li.na", "secret-one-1").status_code == 303
            assert client.get("/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)

    assert _cli(["web", "remove-user", "li.na"], env).returncode == 0
    assert read_users(users_file) == {}
    gone = _cli(["web", "remove-user", "li.na"], env)
    assert gone.returncode == 2 and "no user 'li.na'" in gone.stderr


def test_an_exception_is_written_off_reopened_and_paired_with_who_and_when(site: Site) -> None:
    exceptions = site.exceptions()
    duplicate = next(item for item in exceptions if item.state == "duplicate")
    ledger_only = next(item for item in exceptions if item.state == "ledger_only")
    channel_only = next(item for item in exceptions if item.state == "channel_only")
    assert ledger_only.direction == channel_only.direction and ledger_only.amount != channel_only.amount

    def status(item_id: int) -> tuple[str, str | None, str | None]:
        (item,) = [i for i in site.exceptions() if i.item_id == item_id]
        return item.status, item.last_action, item.last_by

    with site.logged_in(Role.accountant) as client:
        page = client.get(f"/items/{duplicate.item_id}", headers={"Accept-Language": "en"})
        assert 'id="write-off"' in page.text and 'id="reopen"' not in page.text
        token = csrf_of(page)
        assert client.post(f"/items/{duplicate.item_id}/write-off", data={"reason": "x"}).status_code == 403
        assert client.post(f"/items/{duplicate.item_id}/write-off", data={"csrf": token}).status_code == 400
        answer = client.post(
            f"/items/{duplicate.item_id}/write-off",
            data={"csrf": token, "reason": "charged twice, refunded", "ledger_account": "6603"},
        )
        assert answer.status_code == 303 and "acted=" in answer.headers["location"]
        assert status(duplicate.item_id) == ("resolved", "write_off", "accountant")
        page = client.get(f"/items/{duplicate.item_id}", headers={"Accept-Language": "en"})
        assert 'id="reopen"' in page.text and "charged twice, refunded" in page.text
        answer = client.post(
            f"/items/{duplicate.item_id}/reopen", data={"csrf": token, "reason": "not refunded after all"}
        )
        assert answer.status_code == 303
        assert status(duplicate.item_id) == ("open", "reopen", "accountant")
        history = client.get(f"/items/{duplicate.item_id}", headers={"Accept-Language": "en"}).text
        assert history.index("write_off") < history.index("not refunded after all")

        # The ledger's line offers the channel's one-sided line of the same direction to pair with.
        offered = client.get(f"/items/{ledger_only.item_id}", headers={"Accept-Language": "en"}).text
        assert f'<option value="{channel_only.item_id}">' in offered
        pairing = {"csrf": token, "other": str(channel_only.item_id), "reason": "order number mistyped"}
        refused = client.post(f"/items/{ledger_only.item_id}/pair", data=pairing)
        assert refused.status_code == 400 and "allow-difference" in refused.text
        assert status(ledger_only.item_id)[0] == "open"
        answer = client.post(f"/items/{ledger_only.item_id}/pair", data=pairing | {"allow_difference": "yes"})
        assert answer.status_code == 303
    assert status(ledger_only.item_id) == ("resolved", "pair", "accountant")
    assert status(channel_only.item_id) == ("resolved", "pair", "accountant")
