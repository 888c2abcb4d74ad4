"""RFC 3416 procedures over a table, without sockets."""

from __future__ import annotations

import pytest

from plugins.snmp_agent import ber
from plugins.snmp_agent.oid_map import Syntax, Variable
from plugins.snmp_agent.responder import TOO_BIG, Outcome, Table, respond

A = (1, 3, 6, 1, 4, 1, 32473, 2, 1, 1)
SCALAR = A + (1, 1)  # an object: instance .0
COLUMN = A + (4, 1, 11)  # a column: instances .bus.address
OTHER = A + (4, 1, 12)
BIG = 65507


def make_table(live=None) -> Table:
    variables = [Variable(SCALAR + (0,), Syntax.OCTET_STRING, b"1.0")]
    variables += [Variable(COLUMN + (1, a), Syntax.INTEGER, 52000 + a) for a in (1, 2, 3)]
    variables += [Variable(OTHER + (1, a), Syntax.INTEGER, -1000 * a) for a in (1, 2, 3)]
    return Table(variables, live=live, objects=[SCALAR, COLUMN, OTHER])


def names(table: Table, outcome: Outcome):
    out = []
    for item in outcome.items:
        out.append(table.oids[item] if isinstance(item, int) else item)
    return out


def test_get_exact_nosuchinstance_nosuchobject():
    t = make_table()
    out = respond(t, ber.GET_REQUEST, [COLUMN + (1, 2), COLUMN + (1, 9), SCALAR + (1,),
                                       A + (99, 0), (1, 3, 6, 1, 2, 1, 2, 1, 0), SCALAR],
                  budget=BIG)
    assert out.error_status == 0
    assert names(t, out) == [
        COLUMN + (1, 2),
        (COLUMN + (1, 9), ber.NO_SUCH_INSTANCE),  # the column exists, the row not
        (SCALAR + (1,), ber.NO_SUCH_INSTANCE),  # a scalar's only instance is .0
        (A + (99, 0), ber.NO_SUCH_OBJECT),
        ((1, 3, 6, 1, 2, 1, 2, 1, 0), ber.NO_SUCH_OBJECT),
        (SCALAR, ber.NO_SUCH_OBJECT),  # the object itself is no instance
    ]
    assert t.variable(out.items[0]).value == 52002


def test_getnext_and_end_of_mib_view():
    t = make_table()
    out = respond(t, ber.GET_NEXT_REQUEST, [(1, 3), SCALAR + (0,), COLUMN + (1, 3),
                                            OTHER + (1, 3), (2, 1)], budget=BIG)
    assert names(t, out) == [SCALAR + (0,), COLUMN + (1, 1), OTHER + (1, 1),
                             (OTHER + (1, 3), ber.END_OF_MIB_VIEW), ((2, 1), ber.END_OF_MIB_VIEW)]


def test_getbulk_non_repeaters_and_repetitions():
    t = make_table()
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3), COLUMN, OTHER], non_repeaters=1,
                  max_repetitions=2, budget=BIG)
    assert names(t, out) == [SCALAR + (0,),
                             COLUMN + (1, 1), OTHER + (1, 1),
                             COLUMN + (1, 2), OTHER + (1, 2)]


def test_getbulk_stops_after_an_iteration_that_is_all_end_of_view():
    t = make_table()
    out = respond(t, ber.GET_BULK_REQUEST, [OTHER + (1, 2)], max_repetitions=64, budget=BIG)
    assert names(t, out) == [OTHER + (1, 3), (OTHER + (1, 3), ber.END_OF_MIB_VIEW)]
    out = respond(t, ber.GET_BULK_REQUEST, [COLUMN + (1, 2), OTHER + (1, 2)],
                  max_repetitions=1000, budget=BIG)
    assert names(t, out) == [
        COLUMN + (1, 3), OTHER + (1, 3),
        OTHER + (1, 1), (OTHER + (1, 3), ber.END_OF_MIB_VIEW),
        OTHER + (1, 2), (OTHER + (1, 3), ber.END_OF_MIB_VIEW),
        OTHER + (1, 3), (OTHER + (1, 3), ber.END_OF_MIB_VIEW),
        (OTHER + (1, 3), ber.END_OF_MIB_VIEW), (OTHER + (1, 3), ber.END_OF_MIB_VIEW),
    ]


def test_getbulk_edge_values():
    t = make_table()
    # negative non-repeaters and max-repetitions count as zero (RFC 3416 4.2.3)
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3), COLUMN], non_repeaters=-5,
                  max_repetitions=-1, budget=BIG)
    assert out.items == ()
    # more non-repeaters than varbinds: all are non-repeaters; a huge M does not loop
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3)], non_repeaters=10,
                  max_repetitions=2**31 - 1, budget=BIG)
    assert names(t, out) == [SCALAR + (0,)]
    out = respond(t, ber.GET_BULK_REQUEST, [], max_repetitions=2**31 - 1, budget=BIG)
    assert out == Outcome()


def test_getbulk_truncates_to_the_budget():
    t = make_table()
    sizes = [len(t.varbind(i)) for i in range(len(t))]
    budget = sizes[0] + sizes[1] + sizes[2] + 3  # room for three and a bit
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3)], max_repetitions=10, budget=budget)
    assert out.error_status == 0 and names(t, out) == t.oids[:3]
    # never tooBig (RFC 3416 4.2.3): even the non-repeaters' results are cut from the end
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3), COLUMN], non_repeaters=2,
                  max_repetitions=10, budget=sizes[0])
    assert out.error_status == 0 and names(t, out) == [SCALAR + (0,)]
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3)], non_repeaters=1, budget=sizes[0] - 1)
    assert out == Outcome()
    out = respond(t, ber.GET_BULK_REQUEST, [(1, 3), COLUMN], non_repeaters=1,
                  max_repetitions=10, budget=sizes[0])
    assert names(t, out) == [SCALAR + (0,)]


def test_get_and_getnext_too_big():
    t = make_table()
    assert respond(t, ber.GET_REQUEST, [SCALAR + (0,)] * 3, budget=20) == TOO_BIG
    assert respond(t, ber.GET_NEXT_REQUEST, [(1, 3)], budget=5) == TOO_BIG
    assert TOO_BIG.error_status == ber.TOO_BIG and TOO_BIG.items == ()


def test_set_is_refused_with_no_access():
    t = make_table()
    assert respond(t, ber.SET_REQUEST, [SCALAR + (0,)], budget=BIG) == Outcome(
        ber.NO_ACCESS, 1, None)
    assert respond(t, ber.SET_REQUEST, [], budget=BIG) == Outcome()
    with pytest.raises(ValueError):
        respond(t, ber.RESPONSE, [], budget=BIG)


def test_live_values_are_taken_per_request():
    ticks = iter(range(100, 200))
    oid = SCALAR + (0,)
    t = make_table(live={oid: lambda: Variable(oid, Syntax.TIMETICKS, next(ticks))})
    assert t.encoded[0] is None
    first, second = t.varbind(0), t.varbind(0)
    assert first != second
    assert t.variable(0).value == 102


def test_table_must_be_sorted():
    with pytest.raises(ValueError):
        Table([Variable((1, 3, 2), Syntax.INTEGER, 1), Variable((1, 3, 1), Syntax.INTEGER, 1)])
    with pytest.raises(ValueError):
        Table([Variable((1, 3, 1), Syntax.INTEGER, 1), Variable((1, 3, 1), Syntax.INTEGER, 2)])


def test_walking_with_getbulk_visits_every_variable_once(bank_snapshot):
    from plugins.snmp_agent import oid_map

    rows = oid_map.make_bank_variables(bank_snapshot, now=1000.0,
                                       bus_numbers={"bank1": 1, "bank2": 2},
                                       options=oid_map.BankOptions(software_version="x",
                                                                   started_at=990.0))
    t = Table(rows)
    for reps, budget in ((10, 1400), (64, 1400), (25, 65000), (3, 200)):
        seen, cursor = [], (1, 3)
        while True:
            out = respond(t, ber.GET_BULK_REQUEST, [cursor], max_repetitions=reps,
                          budget=budget)
            got = names(t, out)
            assert got, "a walk must make progress"
            ends = [g for g in got if isinstance(g[1], int) and g[1] == ber.END_OF_MIB_VIEW
                    and isinstance(g[0], tuple)]
            seen += [g for g in got if g not in ends]
            if ends:
                break
            cursor = got[-1]
        assert seen == t.oids
