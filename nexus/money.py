"""Money is an integer in minor units plus a lowercase ISO 4217 currency, as Stripe has it."""

from marshmallow import fields, validate

DEFAULT_CURRENCY = "aed"
MAX_AMOUNT = 99_999_999  # Stripe's ceiling for one charge in most currencies

# Active ISO 4217 codes (funds and precious metals left out).
CURRENCIES = frozenset(
    """
    aed afn all amd aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp byn bzd
    cad cdf chf clp cny cop crc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp gel ghs gip
    gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr kmf kpw krw kwd
    kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn myr mzn nad ngn
    nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sdg sek sgd shp
    sle sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah ugx usd uyu uzs ves vnd
    vuv wst xaf xcd xcg xof xpf yer zar zmw zwg
    """.split()
)


class Currency(fields.String):
    """A lowercase ISO 4217 code; upper case is accepted and lowered."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault("example", DEFAULT_CURRENCY)
        super().__init__(validate=validate.OneOf(sorted(CURRENCIES), error="Not an ISO 4217 currency code."), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip().lower()


class Amount(fields.Integer):
    """A positive whole amount in minor units, at most what Stripe charges at once."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT), **kwargs)
