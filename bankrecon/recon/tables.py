"""Reconciliation's tables, on the store's shared metadata (migration 0003 makes them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from bankrecon.store.db import Money, UtcDateTime, metadata, transactions

# SQLite makes only an INTEGER PRIMARY KEY its rowid, the one that counts up by itself.
ITEM_ID = BigInteger().with_variant(Integer(), "sqlite")
# The canonical model's exact fee: NUMERIC in PostgreSQL, text in SQLite.
FEE = transactions.c.fee.type

# One row per run of a channel account's day, kept after later runs: with its inputs'
# fingerprints and its settings, an old result can be explained.
recon_runs = Table(
    "recon_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),  # the workflow run's id
    Column("workflow_id", String(255), nullable=False),
    Column("account_no", String(64), nullable=False),
    Column("recon_date", Date, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    # Order-independent fingerprints made of SHA-256 (bankrecon/recon/fingerprint.py) of the
    # ledger lines read and of the channel's statement lines used.
    Column("ledger_sha256", String(64), nullable=False),
    Column("statement_sha256", String(64), nullable=False),
    Column("ledger_lines", Integer, nullable=False),
    Column("channel_lines", Integer, nullable=False),
    Column("settings_json", Text, nullable=False),  # the account's reconciliation settings
    # channel: a channel's bill against the ledger; bank: a bank statement against the cash book
    # (bankrecon/bankrec), whose ledger columns are the cash book's.
    Column("kind", String(16), nullable=False, server_default=text("'channel'")),
    Index("recon_runs_account_date", "account_no", "recon_date", "finished_at"),
)

# Every ledger and channel line of a run in exactly one state, plus the settlement's verdict.
recon_items = Table(
    "recon_items",
    metadata,
    Column("item_id", ITEM_ID, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("account_no", String(64), nullable=False),
    Column("recon_date", Date, nullable=False),
    # matched, ledger_only, channel_only, amount_differs, duplicate; for the settlement:
    # matched, settlement_missing, settlement_differs.
    Column("state", String(32), nullable=False),
    Column("side", String(16), nullable=False),  # ledger, channel, settlement
    Column("reference", Text, nullable=False),  # '' for a channel line without one
    Column("direction", String(1), nullable=False),  # C: payment, D: refund
    Column("amount", Money, nullable=False),
    Column("fee", FEE),
    Column("occurred_at", UtcDateTime),
    Column("line_ref", Text, nullable=False),  # the ledger's line number, the channel's serial_no
    Column("booked_on", Date, nullable=False),  # the ledger's day, the statement's date
    Column("counterpart_total", Money),  # the other side's total for the reference
    Column("detail", Text),
    # A bank reconciliation's item (side book or bank): the rule that matched it and its match's
    # number in the run, and what the next days' runs match it by while it is open.
    Column("rule", String(16)),
    Column("match_no", Integer),
    Column("counterparty_name", Text),
    Column("counterparty_account", Text),
    Column("memo", Text),
    Column("shared_reference", Text),  # the bank's EndToEndId / reference, the book's reference
    Index("recon_items_run_state", "run_id", "state"),
)

ACTOR_MAX_CHARS = 128
LEDGER_ACCOUNT_MAX_CHARS = 64

# Everything done to an exception: operators' notes, pairs, write-offs and reopenings, and the
# matches a later day's run made. Appended, never updated: the history is the audit trail. Keyed
# by what identifies the item across runs (a re-run makes new items), so an action holds for
# every later item of the same identity.
recon_actions = Table(
    "recon_actions",
    metadata,
    Column("action_id", ITEM_ID, primary_key=True, autoincrement=True),
    Column("account_no", String(64), nullable=False),
    Column("recon_date", Date, nullable=False),
    Column("state", String(32), nullable=False),
    Column("side", String(16), nullable=False),
    Column("reference", Text, nullable=False),
    Column("direction", String(1), nullable=False),
    # explain, pair, write_off, reopen, matched_across_days
    Column("action", String(32), nullable=False),
    Column("reason", Text, nullable=False),  # the note, for explain
    Column("acted_by", String(ACTOR_MAX_CHARS), nullable=False),
    Column("acted_at", UtcDateTime, nullable=False),
    Column("item_id", ITEM_ID),  # the item acted on, of one run
    Column("other_item_id", ITEM_ID),  # pair: the other half
    # pair: the other half's day; matched_across_days: the day whose run matched it
    Column("other_day", Date),
    Column("ledger_account", String(LEDGER_ACCOUNT_MAX_CHARS)),  # write_off: where it is booked (6603, ...)
    Column("difference", Money),  # pair: the ledger's amount less the channel's
    Index("recon_actions_identity", "account_no", "recon_date", "reference", "action_id"),
)

# The ledger lines of one run, copied from the company's source before matching. Temporary:
# each connection has its own, gone with it, so concurrent runs never see each other's.
staging_metadata = MetaData()
ledger_stage = Table(
    "recon_ledger_stage",
    staging_metadata,
    Column("line_no", Integer, nullable=False),
    Column("ledger_day", Date, nullable=False),
    Column("late", Boolean, nullable=False),  # within the cut-off before the day's end
    Column("reference", Text, nullable=False),
    Column("direction", String(1), nullable=False),
    Column("amount", Money, nullable=False),
    Column("fee", FEE),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("channel", Text, nullable=False),
    prefixes=["TEMPORARY"],
)
