"""``python -m bankrecon.sources.wechatpay.simulator``: WeChat Pay's bill API, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from datetime import time as TimeOfDay
from pathlib import Path

from bankrecon.sources.served import serve_until_signalled, served_file
from bankrecon.sources.wechatpay.signing import load_private_key, load_public_key
from bankrecon.sources.wechatpay.simulator.server import BillPlan, WeChatPaySimulator


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bankrecon.sources.wechatpay.simulator",
        description="""\
WeChat Pay API v3 bills for one merchant: GET /v3/bill/tradebill and /v3/bill/fundflowbill
answer STATEMENT_CREATING until a bill is ready, then a signed {hash_type, hash_value,
download_url}; the download URL serves the gzip bill. Every request must carry the merchant's
WECHATPAY2-SHA256-RSA2048 Authorization. GET /_sim/requests lists the requests received.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8610, help="port, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument("--mchid", default="1900009191", help="the merchant's mchid (default: %(default)s)")
    parser.add_argument(
        "--certificate-serial",
        default="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        help="the serial of the merchant's API certificate (default: %(default)s)",
    )
    parser.add_argument(
        "--merchant-public-key-file",
        type=Path,
        required=True,
        help="PEM public key of the merchant's API key pair: verifies its requests",
    )
    parser.add_argument(
        "--wechatpay-private-key-file",
        type=Path,
        required=True,
        help="PEM private key of the WeChat Pay key pair: signs the answers",
    )
    parser.add_argument(
        "--wechatpay-public-key-id",
        default="PUB_KEY_ID_0119000091912025010100000000000000",
        help="the id that names the WeChat Pay public key in Wechatpay-Serial (default: %(default)s)",
    )
    parser.add_argument(
        "--ready-after",
        type=_count,
        default=2,
        metavar="N",
        help="answer STATEMENT_CREATING to the first N requests of each bill (default: %(default)s)",
    )
    parser.add_argument(
        "--ready-at",
        type=_clock_time,
        metavar="HH:MM",
        help="also not ready before this time (CST) the next day",
    )
    parser.add_argument(
        "--rows", type=_count, default=20, metavar="N", help="rows per bill (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generated bills (default: %(default)s)"
    )
    parser.add_argument("--bom", action="store_true", help="generated bills start with a UTF-8 BOM")
    parser.add_argument("--crlf", action="store_true", help="generated bills end their lines in CRLF")
    parser.add_argument(
        "--bill-file",
        type=Path,
        metavar="FILE",
        help="serve this file's bytes as every bill (gzipped, hashed), instead of a generated one",
    )
    parser.add_argument(
        "--download-url-lifetime",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a download URL works (default: %(default)g)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        merchant_key = load_public_key(args.merchant_public_key_file, "--merchant-public-key-file")
        wechatpay_key = load_private_key(args.wechatpay_private_key_file, "--wechatpay-private-key-file")
        served = served_file(args.bill_file, "--bill-file") if args.bill_file is not None else None
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    simulator = WeChatPaySimulator(
        mchid=args.mchid,
        certificate_serial=args.certificate_serial,
        merchant_public_key=merchant_key,
        wechatpay_private_key=wechatpay_key,
        wechatpay_public_key_id=args.wechatpay_public_key_id,
        default_plan=BillPlan(
            ready_after=args.ready_after,
            ready_time=args.ready_at,
            rows=args.rows,
            bom=args.bom,
            line_end="\r\n" if args.crlf else "\n",
            served=served,
        ),
        seed=args.seed,
        download_url_lifetime=args.download_url_lifetime,
        host=args.host,
        port=args.port,
    )
    return serve_until_signalled(
        simulator,
        parser,
        f"{args.host}:{args.port}",
        lambda: f"WeChat Pay simulator listening on {simulator.url} for mchid {args.mchid}",
    )


if __name__ == "__main__":
    sys.exit(main())
