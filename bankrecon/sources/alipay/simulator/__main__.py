"""``python -m bankrecon.sources.alipay.simulator``: Alipay's bill gateway, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bankrecon.sources.alipay.signing import load_private_key, load_public_key
from bankrecon.sources.alipay.simulator.server import FAULTS, AlipaySimulator, BillPlan
from bankrecon.sources.served import serve_until_signalled, served_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bankrecon.sources.alipay.simulator",
        description="POST /gateway.do answers alipay.data.dataservice.bill.downloadurl.query: "
        "isp.bill_not_exist until a bill is ready, then a signed bill_download_url serving a GBK zip.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8620, help="0 for any free one (default: %(default)s)")
    parser.add_argument("--app-id", default="2021000000000000")
    parser.add_argument("--app-public-key-file", type=Path, required=True, help="verifies the app's requests")
    parser.add_argument("--alipay-private-key-file", type=Path, required=True, help="signs the answers")
    parser.add_argument("--ready-after", type=int, default=2, metavar="N", help="isp.bill_not_exist N times")
    parser.add_argument("--rows", type=int, default=20, metavar="N")
    parser.add_argument(
        "--wording",
        choices=("current", "older"),
        default="current",
        help="the trade trailers' words: Alipay's of today (商家实收共, 商家实收退款共) or the older ones "
        "(交易金额共, 交易退款金额共) (default: %(default)s)",
    )
    parser.add_argument(
        "--member",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="serve this file as a member of every bill, under its own name, instead of a generated bill "
        "(repeat it: the summary first, then the detail, as Alipay's zips)",
    )
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS, help="once each, in order")
    args = parser.parse_args(argv)
    try:
        app_key = load_public_key(args.app_public_key_file, "--app-public-key-file")
        alipay_key = load_private_key(args.alipay_private_key_file, "--alipay-private-key-file")
        members = [(path.name, served_file(path, "--member")) for path in args.member]
        plan = BillPlan(
            ready_after=args.ready_after,
            rows=args.rows,
            wording=args.wording,
            members=members,
            faults=args.fault,
        )
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = AlipaySimulator(
        app_id=args.app_id,
        app_public_key=app_key,
        alipay_private_key=alipay_key,
        default_plan=plan,
        host=args.host,
        port=args.port,
    )
    return serve_until_signalled(
        gateway,
        parser,
        f"{args.host}:{args.port}",
        lambda: f"Alipay simulator: gateway {gateway.gateway} for app_id {args.app_id}",
    )


if __name__ == "__main__":
    sys.exit(main())
