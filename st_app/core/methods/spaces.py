"""Named sub-net sampling spaces of the authors' code (``--sample_space``), per network layout.

A space lists, per stage, the numbers of trailing blocks a sampled sub-net may drop (drawn
uniformly and independently per stage). Their ``sample()`` defines eight spaces, but only for
ResNet-50's stages ``[3, 4, 6, 3]`` (ResNet-101/152 always use ``default``; ResNet-18/34 and the
CIFAR ResNets have no sampler). For ResNet-50 they are, as drop ranges per stage:

========  ======================  ==========================================
name      drops per stage          rule it follows
========  ======================  ==========================================
default   0-2 | 0-3 | 0-5 | 0-2    keep at least 1 block per stage (all)
space1    0-1 | 0-2 | 0-4 | 0-1    keep at least 2 blocks per stage
space2    0-1 | 0-2 | 0-5 | 0-2    (mixed: keep >= 2, 2, 1, 1)
space3    0   | 0-1 | 0-3 | 0      keep at least 3 blocks per stage (ST++)
space4    0   | 0-1 | 0-4 | 0-1    (mixed)
space5    0   | 0   | 0-2 | 0      (mixed)
space6    0   | 0-1 | 0-3 | 0-1    (mixed)
space7    0   | 0-2 | 0-4 | 0      (mixed)
========  ======================  ==========================================

``default``, ``space1`` and ``space3`` follow one rule each, "every stage keeps at least k blocks"
with k = 1, 2, 3, so that rule is what they mean on any other layout: space3 keeps
``min(n, 3)`` blocks of an n-block stage. ResNet-34 has ResNet-50's stages and gets the very
same lists; ResNet-101 ``[3,4,23,3]`` -> ``0|0-1|0-20|0``; ResNet-152 ``[3,8,36,3]`` ->
``0|0-5|0-33|0``; resnet32 ``[5,5,5]`` -> ``0-2|0-2|0-2``; resnet56 ``[9,9,9]`` -> ``0-6`` per
stage. Networks whose stages have at most 3 blocks (ResNet-18 ``[2,2,2,2]``, resnet20
``[3,3,3]``) keep every block: their space3 holds only the full network, so ST++'s sub-net
loop there distils the full net at other input sizes only. The mixed spaces follow no rule
and exist only for ``[3, 4, 6, 3]`` layouts.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..plan import NetLayout, _check_space, parse_space

__all__ = ["NAMED_SPACES", "resolve_space"]

# the authors' literal ResNet-50 lists for the spaces that follow no rule
_R50_ONLY: dict[str, list[list[int]]] = {
    "space2": [[0, 1], [0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 1, 2]],
    "space4": [[0], [0, 1], [0, 1, 2, 3, 4], [0, 1]],
    "space5": [[0], [0], [0, 1, 2], [0]],
    "space6": [[0], [0, 1], [0, 1, 2, 3], [0, 1]],
    "space7": [[0], [0, 1, 2], [0, 1, 2, 3, 4], [0]],
}
_KEEP_AT_LEAST = {"space1": 2, "space3": 3}
NAMED_SPACES = ("default", "space1", "space2", "space3", "space4", "space5", "space6", "space7")


def resolve_space(space: str | Sequence[Sequence[int]] | None, layout: NetLayout) -> list[list[int]]:
    """Per-stage drop lists for a space name, a ``0|0-1|...`` text, explicit lists or None (all)."""
    if space is None:
        return _check_space(layout, None)
    if isinstance(space, str):
        key = space.strip().lower()
        if key in ("default", "full"):
            return _check_space(layout, None)  # every ordered sub-net the layout allows
        if key in _KEEP_AT_LEAST:
            k = max(_KEEP_AT_LEAST[key], layout.min_keep)
            return _check_space(layout, [list(range(max(1, len(stage) - k + 1))) for stage in layout.stages])
        if key in _R50_ONLY:
            if layout.depths != (3, 4, 6, 3):
                raise ValueError(
                    f"sampling space {key} is defined only for ResNet-50's stages [3, 4, 6, 3] (this network "
                    f"has {list(layout.depths)}); use default, space1, space3 or explicit drop ranges"
                )
            return _check_space(layout, _R50_ONLY[key])
        if key.startswith("space") or "|" not in key:
            raise ValueError(f"unknown sampling space {space!r}; use one of {', '.join(NAMED_SPACES)} "
                             "or per-stage drop ranges such as '0|0-1|0-3|0'")
        return parse_space(key, layout)
    return _check_space(layout, space)
