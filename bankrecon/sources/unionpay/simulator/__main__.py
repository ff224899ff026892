"""``python -m bankrecon.sources.unionpay.simulator``: UnionPay's file transfer, until SIGINT or SIGTERM.

It makes a test PKI at start (a root, a middle certificate, UnionPay's signing certificate and
the merchant's) and writes the merchant's side into ``--pki-dir``: the PFX its requests are
signed with (password from ``--pfx-password-env``) and the root and middle certificates its
answers are checked against. Nothing of it is UnionPay's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bankrecon.sources.served import serve_until_signalled
from bankrecon.sources.unionpay.simulator.pki import make_pki
from bankrecon.sources.unionpay.simulator.server import FilePlan, UnionPaySimulator


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bankrecon.sources.unionpay.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=8630, help="port, 0 for any free one (default: %(default)s)")
    add("--mer-id", default="802310048993424", help="the merchant's merId (default: %(default)s)")
    add("--pki-dir", type=Path, required=True, help="where the merchant's PFX and CA files go")
    add("--pfx-password-env", required=True, help="the variable holding the PFX's password")
    add("--ready-after", type=int, default=2, metavar="N", help="respCode 98 N times (default: %(default)s)")
    args = parser.parse_args(argv)
    password = os.environ.get(args.pfx_password_env)
    if not password:
        parser.error(f"{args.pfx_password_env} is not set: the PFX's password")
    pki = make_pki()
    pki.write(args.pki_dir, password)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    simulator = UnionPaySimulator(
        mer_id=args.mer_id,
        merchant_certificate=pki.merchant.certificate,
        unionpay=pki.unionpay,
        default_plan=FilePlan(ready_after=args.ready_after),
        host=args.host,
        port=args.port,
    )
    return serve_until_signalled(
        simulator,
        parser,
        f"{args.host}:{args.port}",
        lambda: f"UnionPay simulator listening on {simulator.url} for merId {args.mer_id}",
    )


if __name__ == "__main__":
    sys.exit(main())
