"""``python -m bankrecon.sources.refbank.simulator``: the reference bank, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from datetime import time as TimeOfDay

from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    DOWNLOAD_PATH,
    BankSimulator,
    StatementPlan,
)
from bankrecon.sources.served import serve_until_signalled


def _merchant(text: str) -> tuple[str, str]:
    merchant_id, colon, secret = text.partition(":")
    if not (merchant_id and colon and secret):
        raise argparse.ArgumentTypeError(f"expected ID:SECRET, got {text!r}")
    return merchant_id, secret


def _clock_time(text: str) -> TimeOfDay:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HH:MM, got {text!r}") from None


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


_EXAMPLE = """\
a signed request with curl (bill_date must be within the last 90 days):
  body='{"merchant_id":"M100001","account_no":"6222020000000001","bill_date":"20261124","request_id":"r1"}'
  sig=$(printf %s "$body" | openssl dgst -sha256 -hmac demo-secret-change-me -r | cut -d' ' -f1)
  curl -H 'Content-Type: application/json' -H 'X-Merchant-Id: M100001' -H "X-Signature: $sig" \\
       -d "$body" http://127.0.0.1:8600/statement/download
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bankrecon.sources.refbank.simulator",
        description=f"""\
The reference bank of bank-api.md. POST {DOWNLOAD_PATH} takes HMAC-signed requests,
allows one request per merchant per window and answers '9999 系统错误' until a
statement is ready. Every account of 10 to 32 digits exists.
GET /_sim/requests lists the requests received so far; GET /_sim/health answers 'ok'.
Serves until SIGINT or SIGTERM.""",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8600, help="port to listen on, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--min-interval",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="the per-merchant window: a request sooner than this after the merchant's previous one "
        "gets 1005 and restarts the window (default: %(default)g)",
    )
    parser.add_argument(
        "--ready-after",
        type=_count,
        default=3,
        metavar="N",
        help="answer 9999 (not ready) to the first N requests of each statement (default: %(default)s)",
    )
    parser.add_argument(
        "--ready-at",
        type=_clock_time,
        metavar="HH:MM",
        help="also not ready before this China Standard Time on the day after the bill date",
    )
    parser.add_argument(
        "--lines",
        type=_count,
        default=20,
        metavar="N",
        help="transactions per statement (default: %(default)s)",
    )
    parser.add_argument(
        "--parts", type=int, default=1, metavar="N", help="part files per statement (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generated statements (default: %(default)s)"
    )
    parser.add_argument(
        "--mime-wrap", action="store_true", help="wrap the base64 file content with CRLF every 76 characters"
    )
    parser.add_argument(
        "--fail-every",
        type=_count,
        default=0,
        metavar="N",
        help="answer every Nth request of each statement with HTTP 500 (default: 0, never)",
    )
    parser.add_argument(
        "--merchant",
        type=_merchant,
        action="append",
        metavar="ID:SECRET",
        help=f"a merchant and its HMAC secret; repeat for several "
        f"(default: {DEMO_MERCHANT_ID}:{DEMO_MERCHANT_SECRET})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.parts < 1:
        parser.error("--parts must be at least 1")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    merchants = dict(args.merchant or [(DEMO_MERCHANT_ID, DEMO_MERCHANT_SECRET)])
    plan = StatementPlan(
        ready_after=args.ready_after,
        ready_time=args.ready_at,
        lines=args.lines,
        parts=args.parts,
        mime_wrap=args.mime_wrap,
        fail_every=args.fail_every,
    )
    simulator = BankSimulator(
        merchants=merchants,
        min_interval=args.min_interval,
        default_plan=plan,
        seed=args.seed,
        host=args.host,
        port=args.port,
    )
    return serve_until_signalled(
        simulator,
        parser,
        f"{args.host}:{args.port}",
        lambda: (
            f"bank simulator listening on {simulator.url} for merchant {', '.join(merchants)} "
            f"(window {args.min_interval:g}s, ready after {args.ready_after} requests)"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
