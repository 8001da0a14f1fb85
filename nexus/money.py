"""Money is an integer in minor units plus a lowercase ISO 4217 currency, as Stripe has it.

`STRIPE_CURRENCIES` is the one list of the currencies a store may sell in: those Stripe charges,
each with its minor unit and the smallest charge Stripe takes in it.
"""

from typing import NamedTuple

from marshmallow import fields, validate

DEFAULT_CURRENCY = "aed"
MAX_AMOUNT = 99_999_999  # Stripe's ceiling for one charge in most currencies
NOT_CHARGEABLE = "Stripe cannot charge this currency."


class StripeCurrency(NamedTuple):
    exponent: int  # digits after the decimal point in Stripe's API amounts (2: 1999 = 19.99)
    minimum: int  # the smallest charge Stripe takes, in minor units
    step: int = 1  # every amount is a multiple of this


# From https://docs.stripe.com/currencies:
# - "Presentment currencies": the codes below (card payments; ISO codes Stripe does not list,
#   such as cup, irr or kpw, are not here and no store can use them).
# - "Zero-decimal currencies" (bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf):
#   exponent 0, the amount is the number of units.
# - "Three-decimal currencies" (bhd jod kwd omr tnd): exponent 3, and the last digit of every
#   amount must be 0, so amounts are multiples of 10.
# - "Special cases": ISK is charged as a two-decimal amount that must be divisible by 100.
# - "Minimum and maximum charge amounts": the minimums Stripe lists explicitly (usd 0.50,
#   aed 2.00, aud 0.50, bgn 1.00, brl 0.50, cad 0.50, chf 0.50, czk 15.00, dkk 2.50, eur 0.50,
#   gbp 0.30, hkd 4.00, huf 175.00, inr 0.50, jpy 50, mxn 10, myr 2, nok 3.00, nzd 0.50,
#   pln 2.00, ron 2.00, sek 3.00, sgd 0.50, thb 10). For every other currency Stripe's rule is
#   the equivalent of USD 0.50: the values below are that at 2025 exchange rates, rounded up to a
#   round amount so that exchange-rate drift does not put them under Stripe's floor. The maximum
#   is MAX_AMOUNT (Stripe's 8 digits) in every currency.
def _table(rows: str) -> dict[str, StripeCurrency]:
    """`code exponent minimum [step]` per line, as written below."""
    table = {}
    for row in rows.strip().splitlines():
        code, *numbers = row.split()
        table[code] = StripeCurrency(*map(int, numbers))
    return table


STRIPE_CURRENCIES: dict[str, StripeCurrency] = _table(
    """
    aed 2 200
    afn 2 3500
    all 2 5000
    amd 2 20000
    aoa 2 50000
    ars 2 100000
    aud 2 50
    awg 2 100
    azn 2 100
    bam 2 100
    bbd 2 100
    bdt 2 6000
    bgn 2 100
    bhd 3 200 10
    bif 0 1500
    bmd 2 50
    bnd 2 100
    bob 2 400
    brl 2 50
    bsd 2 50
    bwp 2 700
    byn 2 200
    bzd 2 100
    cad 2 50
    cdf 2 150000
    chf 2 50
    clp 0 500
    cny 2 400
    cop 2 200000
    crc 2 30000
    cve 2 5000
    czk 2 1500
    djf 0 100
    dkk 2 250
    dop 2 3000
    dzd 2 7000
    egp 2 2500
    etb 2 8000
    eur 2 50
    fjd 2 150
    fkp 2 40
    gbp 2 30
    gel 2 150
    gip 2 40
    gmd 2 3500
    gnf 0 5000
    gtq 2 400
    gyd 2 11000
    hkd 2 400
    hnl 2 1300
    htg 2 7000
    huf 2 17500
    idr 2 800000
    ils 2 200
    inr 2 50
    isk 2 7000 100
    jmd 2 8000
    jod 3 400 10
    jpy 0 50
    kes 2 6500
    kgs 2 4500
    khr 2 200000
    kmf 0 250
    krw 0 700
    kwd 3 200 10
    kyd 2 50
    kzt 2 25000
    lak 2 1100000
    lbp 2 4500000
    lkr 2 15000
    lrd 2 10000
    lsl 2 900
    mad 2 500
    mdl 2 900
    mga 0 2500
    mkd 2 3000
    mmk 2 110000
    mnt 2 170000
    mop 2 400
    mur 2 2500
    mvr 2 800
    mwk 2 90000
    mxn 2 1000
    myr 2 200
    mzn 2 3200
    nad 2 900
    ngn 2 80000
    nio 2 1900
    nok 2 300
    npr 2 7000
    nzd 2 50
    omr 3 200 10
    pab 2 50
    pen 2 200
    pgk 2 200
    php 2 3000
    pkr 2 14000
    pln 2 200
    pyg 0 4000
    qar 2 200
    ron 2 200
    rsd 2 5500
    rub 2 5000
    rwf 0 700
    sar 2 200
    sbd 2 450
    scr 2 700
    sek 2 300
    sgd 2 50
    shp 2 40
    sle 2 1200
    sos 2 30000
    srd 2 1800
    szl 2 900
    thb 2 1000
    tjs 2 550
    tnd 3 1600 10
    top 2 120
    try 2 2000
    ttd 2 350
    twd 2 1600
    tzs 2 130000
    uah 2 2100
    ugx 0 2000
    usd 2 50
    uyu 2 2000
    uzs 2 650000
    vnd 0 13000
    vuv 0 60
    wst 2 150
    xaf 0 350
    xcd 2 150
    xcg 2 100
    xof 0 350
    xpf 0 60
    yer 2 12500
    zar 2 900
    zmw 2 1400
    """
)


def price_problem(amount: int, currency: str) -> str | None:
    """Why Stripe could not charge `amount` of `currency` as a price (None if it can)."""
    known = STRIPE_CURRENCIES.get(currency)
    if known is None:  # a store opened before this list existed
        return NOT_CHARGEABLE
    if amount % known.step:
        return f"Prices in {currency} are a multiple of {known.step} (Stripe charges {currency} in steps of it)."
    return None


def charge_problem(total: int, currency: str) -> str | None:
    """Why Stripe could not charge `total` of `currency` at once (None if it can)."""
    known = STRIPE_CURRENCIES.get(currency)
    if known is None:
        return NOT_CHARGEABLE
    if total > MAX_AMOUNT:
        return f"An order's total is at most {MAX_AMOUNT} {currency} minor units; split it into several orders."
    if total < known.minimum:
        return f"An order's total is at least {known.minimum} {currency} minor units, Stripe's smallest charge."
    return None


def formatted(amount: int, currency: str) -> str:
    """`amount` minor units as people read it, in the currency's minor unit: `1999 usd` is
    `19.99 USD`, `500 jpy` is `500 JPY`, `1250 kwd` is `1.250 KWD`, `123456 usd` is `1,234.56 USD`."""
    known = STRIPE_CURRENCIES.get(currency)
    exponent = known.exponent if known is not None else 2
    sign, units = ("-" if amount < 0 else ""), abs(amount)
    if exponent == 0:
        return f"{sign}{units:,} {currency.upper()}"
    whole, fraction = divmod(units, 10**exponent)
    return f"{sign}{whole:,}.{fraction:0{exponent}d} {currency.upper()}"


class Currency(fields.String):
    """A currency Stripe charges, as a lowercase ISO 4217 code; upper case is accepted and lowered."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault("example", DEFAULT_CURRENCY)
        super().__init__(validate=validate.OneOf(sorted(STRIPE_CURRENCIES), error=NOT_CHARGEABLE), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip().lower()


class Amount(fields.Integer):
    """A positive whole amount in minor units, at most what Stripe charges at once."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT), **kwargs)
