"""Ids given as text (GraphQL IDs, cursors, stream and file fields) on both backends:
only ASCII digits within the column's range name a row. Anything else names none:
Unicode digits such as '²' (which `str.isdigit()` takes and `int()` refuses) or
ARABIC-INDIC DIGIT ONE (which `int()` reads as 1), a number past the column's range,
more digits than `int()` will read. NOT_FOUND (INVALID for a cursor), never an internal
error and never another row."""

from __future__ import annotations

import pytest

from app.errors import UserError
from app.services import ledger, rewards, sources, wheel
from app.services.common import id_number
from app.services.reward_items import require_item
from app.services.tenants import create_tenant
from models import DataSource, Player
from tests.service.rewards_helpers import fund, item

ARABIC_ONE, BOLD_ONE = "\u0661", "\U0001d7cf"  # int() reads both as 1
# Texts that name no row, whatever rows exist (ids 1 and 2 do, in these tests).
NO_ROW = [
    *("²", "1²", ARABIC_ONE, BOLD_ONE, "2**3", " 1", "1 ", "+1", "-1", "1.0", ""),
    *("2147483648", "9" * 19, "9" * 5000),  # past 32 bits, past 64 bits, past int()
]


def test_only_ascii_digits_within_the_range_are_an_id():
    assert id_number("42") == 42 == id_number(42)
    assert id_number("0042") == 42
    assert id_number(str(2**31 - 1), 2**31 - 1) == 2**31 - 1
    assert id_number(str(2**63 - 1)) == 2**63 - 1
    for text in NO_ROW[:-3]:
        assert id_number(text) is None, text
    assert int(ARABIC_ONE) == int(BOLD_ONE) == 1 and "²".isdigit()  # what isdigit() let in
    assert id_number("2147483648", 2**31 - 1) is None
    assert id_number(str(2**63)) is None
    assert id_number("9" * 5000) is None  # int() would raise: more than 4,300 digits


@pytest.fixture
async def shop(rt):
    return await create_tenant("textids", preset="telco")


async def test_no_service_takes_other_digits_or_an_id_out_of_range_for_a_row(rt, shop):
    await fund(rt, shop, "ann", 500)
    first = await item(shop, 10)
    await item(shop, 10)
    await rewards.redeem(rt, shop, "ann", first.id)
    player = await Player.get(tenant_id=shop.id, external_id="ann")
    page, _ = await ledger.transactions_page(player, 10, None)
    assert len(page) >= 2  # the funds and the redemption at least
    source = await DataSource.filter(tenant_id=shop.id).order_by("id").first()
    assert source is not None and source.id == 1  # what int() makes of ARABIC_ONE
    for text in NO_ROW:
        prize = {"label": "x", "kind": "REWARD", "rewardId": text, "weight": 1}
        for call in (
            require_item(shop, text),
            rewards.require_redemption(shop, text),
            sources.find_source(shop, text, None),
            wheel.configure_wheel(shop, prizes=[prize]),
        ):
            with pytest.raises(UserError) as refused:
                await call
            assert refused.value.code == "NOT_FOUND", (text, refused.value.message)
        # An empty cursor is no cursor (the first page); transactions' ids are 64-bit.
        if text and text != "2147483648":
            with pytest.raises(UserError) as refused:
                await ledger.transactions_page(player, 10, ledger.encode_cursor(text))
            assert refused.value.code == "INVALID", text
    assert (await require_item(shop, str(first.id))).id == first.id
    assert (await sources.find_source(shop, "1", None)).id == 1
