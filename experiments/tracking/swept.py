"""The keys a sweep varies, and how a run's values of them are written in its name, in the
report's tables and in its figures' legends.

A sweep's parent works out the keys (experiments.sweeps.plan.swept_keys) and each job tags
its run with its values (tags.SWEPT, a JSON object key -> value as the override gave it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

# Keys the default run name (experiments.runs.tracked.default_run_name) already shows:
# seed-he-lr0.03-n1000-s0, resnet20-nonorm-... Names keep that form, so sweeps over these
# alone read as they always did; any other swept key is appended.
NAMED_KEYS = frozenset({"model", "model.name", "model.depth", "init", "init.name",
                        "optim.lr", "data.n_train", "trainer.seed"})
# Keys the report's figures lay out on their own (panels, colours, x axis); the legend
# names the other swept keys.
FIGURE_KEYS = frozenset({"init", "init.name", "optim.lr", "data.n_train", "trainer.seed"})
SEED_KEY = "trainer.seed"


def named_in_default(key: str, values: Sequence[str]) -> bool:
    """Whether the default name tells the runs apart by `key` alone.

    model.norm shows only as "-nonorm", so it does when at most one of its swept values
    is something other than "none" (the depth study's batch,none)."""
    if key == "model.norm":
        return len(set(values) - {"none"}) <= 1
    return key in NAMED_KEYS


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each key by its last part (trainer.batch_size -> batch_size), or whole where two
    keys share a last part, so that a name stays short and still unambiguous."""
    keys = list(keys)
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def format_value(value: str) -> str:
    """A value as a name shows it: floats by %g (0.0005 not 5.0e-04's every digit)."""
    try:
        number = float(value)
    except ValueError:
        return value
    if value.lstrip("+-").isdigit():
        return value
    return f"{number:g}"


def name_suffix(swept: Mapping[str, str], values_of: Mapping[str, Sequence[str]]) -> str:
    """What the run name adds for the swept keys its default form does not show,
    e.g. "-batch_size=32-optim=adam"; `values_of` maps each key to all its swept values."""
    extra = [k for k in swept if not named_in_default(k, values_of.get(k, [swept[k]]))]
    short = short_names(extra)
    return "".join(f"-{short[k]}={format_value(swept[k])}" for k in extra)


def label(swept: Mapping[str, str], keys: Sequence[str]) -> str:
    """"batch_size=32, optim=adam": the values of `keys` in a legend or a group's name."""
    short = short_names(keys)
    return ", ".join(f"{short[k]}={format_value(swept[k])}" for k in keys if k in swept)


def encode(swept: Mapping[str, str]) -> str:
    return json.dumps(dict(swept), sort_keys=False)


def decode(text: str | None) -> dict[str, str]:
    """The tag's values; {} for a run logged before the tag existed, or outside a sweep."""
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
