import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan, ordered_space, parse_space, space_size

LAYOUT20 = build_model("resnet20", 10, 1, 8).layout


def test_text_round_trip_and_shorthand():
    p = SubnetPlan.parse("0|3,4|6", LAYOUT20)
    assert str(p) == "0|3,4|6"
    assert p.depths == (1, 2, 1)
    assert SubnetPlan.parse("depths:1,2,1", LAYOUT20) == p
    assert SubnetPlan.parse("0,1,2|3,4,5|6,7,8", LAYOUT20).is_full
    assert SubnetPlan.parse("main", LAYOUT20) == LAYOUT20.full_plan()
    assert hash(p) == hash(SubnetPlan.parse(" 0 | 3, 4 | 6 ", LAYOUT20))


def test_operations_give_the_documented_texts():
    full = LAYOUT20.full_plan()
    assert str(full.delete(4)) == "0,1,2|3,5|6,7,8"
    assert str(full.swap(1, 2)) == "0,2,1|3,4,5|6,7,8"
    assert str(full.toggle(7).toggle(7)) == str(full)
    assert str(full.move(0, 1)) == "1,0,2|3,4,5|6,7,8"
    assert str(full.delete(3)) == "0,1,2|4,5|6,7,8"  # projection shortcut stays
    assert str(full.delete(3).restore(3)) == str(full)
    assert str(SubnetPlan.from_depths(LAYOUT20, [1, 2, 1])) == "0|3,4|6"
    assert full.num_paths == 2**9
    assert full.paths_by_length()[:3] == [1, 9, 36]


@pytest.mark.parametrize(
    "text, rule",
    [
        ("0,1|3,4,5|6,7,8,9", "unknown block 9"),
        ("0,3|4|6", "wrong stage"),
        ("0,0|3|6", "repeated block 0"),
        ("0|4,3|6", "permuting blocks of different shapes"),
        ("0|3,4", "malformed plan"),
        ("a|3|6", "malformed plan"),
        ("0,|3|6", "malformed plan"),
        ("depths:1,2", "malformed depths"),
        ("depths:1,4,1", "out of range"),
    ],
)
def test_invalid_plans_name_the_rule(text, rule):
    with pytest.raises(ValueError, match=rule):
        SubnetPlan.parse(text, LAYOUT20)


def test_invalid_operations():
    full = LAYOUT20.full_plan()
    with pytest.raises(ValueError, match="different stages"):
        full.swap(2, 3)
    with pytest.raises(ValueError, match="different shapes"):
        full.swap(3, 4)
    with pytest.raises(ValueError, match="not in the plan"):
        full.delete(4).delete(4)
    with pytest.raises(ValueError, match="unknown block"):
        full.toggle(99)
    with pytest.raises(ValueError, match="leave stage"):
        full.move(2, 1)


def test_ordered_space_sizes():
    assert len(ordered_space(LAYOUT20)) == 27
    assert len(set(ordered_space(LAYOUT20))) == 27
    assert all(p.is_ordered and all(d >= 1 for d in p.depths) for p in ordered_space(LAYOUT20))
    assert space_size(build_model("resnet56", 10, 3, 32).layout) == 729
    assert space_size(build_model("resnet50", 10, 3, 32).layout) == 216
    r50 = build_model("resnet50", 10, 3, 32).layout
    assert space_size(r50, parse_space("0|0-1|0-3|0", r50)) == 8


def test_sampling_is_seeded_and_respects_space():
    a = [SubnetPlan.sample(LAYOUT20, random.Random(5)) for _ in range(3)]
    b = [SubnetPlan.sample(LAYOUT20, random.Random(5)) for _ in range(3)]
    assert a == b
    space = [[0], [1, 2], [0]]
    rng = random.Random(0)
    for _ in range(50):
        p = SubnetPlan.sample(LAYOUT20, rng, space)
        assert p.depths[0] == 3 and p.depths[1] in (1, 2) and p.depths[2] == 3
    with pytest.raises(ValueError, match="keeps each stage's first block"):
        SubnetPlan.sample(LAYOUT20, rng, [[0], [3], [0]])
    seen = {SubnetPlan.sample(LAYOUT20, rng) for _ in range(400)}
    assert len(seen) == 27


OPS = st.lists(
    st.tuples(st.sampled_from(["toggle", "delete", "restore", "swap", "move"]), st.integers(0, 8), st.integers(-2, 8)),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_random_edits_keep_plans_valid(ops):
    plan = LAYOUT20.full_plan()
    for op, i, j in ops:
        try:
            if op == "swap":
                new = plan.swap(i, j)
            elif op == "move":
                new = plan.move(i, j)
            else:
                new = getattr(plan, op)(i)
        except ValueError:
            continue
        # every successful edit gives a valid plan whose text reads back to the same plan
        assert SubnetPlan.parse(str(new), LAYOUT20) == new
        assert len(set(new.blocks)) == len(new.blocks)
        for s, stage in enumerate(new.stages):
            assert set(stage) <= set(LAYOUT20.stages[s])
            for pos, b in enumerate(stage):
                if LAYOUT20.shapes[b].changes_shape:
                    assert pos == 0
        if op == "toggle":
            assert (i in new.blocks) != (i in plan.blocks)
        plan = new
