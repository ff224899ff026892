"""Custom search attributes: operators filter statements by account, date, phase and lateness.

    temporal workflow list --query "BankAccount = '6222020000000001' AND StatementPhase = 'waiting_for_bank'"

The worker registers them on start-up when they are missing (the dev server and a
self-hosted cluster allow it); where it may not (Temporal Cloud with a restricted key),
it stops and prints the commands that register them.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

BANK_ACCOUNT = SearchAttributeKey.for_keyword("BankAccount")
BILL_DATE = SearchAttributeKey.for_keyword("BillDate")  # ISO date: compares in date order
STATEMENT_PHASE = SearchAttributeKey.for_keyword("StatementPhase")
STATEMENT_LATE = SearchAttributeKey.for_bool("StatementLate")

_KINDS: dict[SearchAttributeKey[Any], tuple[str, IndexedValueType.ValueType]] = {
    BANK_ACCOUNT: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    BILL_DATE: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    STATEMENT_PHASE: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    STATEMENT_LATE: ("Bool", IndexedValueType.INDEXED_VALUE_TYPE_BOOL),
}


class SearchAttributesMissing(Exception):
    pass


def dev_server_flags() -> list[str]:
    """``temporal server start-dev`` arguments that register every attribute."""
    return [arg for key, (kind, _) in _KINDS.items() for arg in ("--search-attribute", f"{key.name}={kind}")]


async def register_search_attributes(client: Client) -> list[str]:
    """Add the attributes the namespace lacks; the names added."""
    namespace = client.namespace
    try:
        known = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        defined = set(known.custom_attributes) | set(known.system_attributes)
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server only adds
            raise
        defined = set()
    missing = {key.name: value for key, (_, value) in _KINDS.items() if key.name not in defined}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        commands = "; ".join(
            f"temporal operator search-attribute create --namespace {namespace} --name {name} --type {kind}"
            for key, (kind, _) in _KINDS.items()
            if (name := key.name) in missing
        )
        raise SearchAttributesMissing(
            f"search attributes {', '.join(sorted(missing))} are not registered in namespace "
            f"{namespace!r} and this worker may not add them ({exc.message}); register them: {commands}"
        ) from None
    return sorted(missing)
