"""Values as JSON stores them: the one conversion every module uses before it writes a
value into a JSON column or hashes it (audit events, the drills' plans and ledger)."""

import json

from django.core.serializers.json import DjangoJSONEncoder


def json_safe(value):
    """`value` as plain JSON values: datetimes, dates, decimals and UUIDs as Django's
    encoder writes them, tuples as lists; what reading the stored JSON back gives."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def canonical_json(value):
    """One spelling per value (sorted keys, no spaces, ASCII): what hashes are taken of."""
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
