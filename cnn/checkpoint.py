"""Training checkpoints: everything needed to continue a run exactly where it stopped.

One `.npz` file (read without pickle) holds
    net/<name>          the network's parameters and buffers (Sequential.state_dict)
    optim/<name>        the optimiser's state (Optimizer.state_dict: moments, step count)
    average/<name>      with a weight average (cnn.averaging), its state: the averaged
                        parameters and buffers and its update count
    epoch, step         the last completed epoch and optimiser step
    rng                 the state of every random generator, as JSON text (uint8 bytes)
    format              the checkpoint format version

The schedule needs no state of its own: it is indexed by the optimiser step, which
`cnn.training.fit(start_epoch=epoch + 1)` recomputes. Dropout layers draw from their own
generator; their states are saved under "layer:<name>" in the rng entry.

`save` writes a temporary file next to the target and renames it over the target, so a
crash or a full disk never leaves a half-written checkpoint in place of a good one.
`load` checks the file and names it and the problem if it cannot be used.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnn.averaging import WeightAverage
from cnn.network import Sequential
from cnn.optim import Optimizer
from cnn.rng import RETIRED_STREAMS

FORMAT_VERSION = 1
_NET, _OPTIM, _AVERAGE = "net/", "optim/", "average/"
_LAYER_RNG = "layer:"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the run."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as plain arrays and dicts."""

    epoch: int
    step: int
    net: dict[str, np.ndarray]
    optim: dict[str, np.ndarray]
    rng: dict[str, dict] = field(default_factory=dict)  # bit_generator.state per stream
    average: dict[str, np.ndarray] = field(default_factory=dict)  # empty: no weight average


def _generators_with_layers(
    net: Sequential, generators: Mapping[str, np.random.Generator]
) -> dict[str, np.random.Generator]:
    """The run's streams plus every generator a layer owns (Layer.generators: Dropout's),
    inside blocks too: a layer's only generator under the layer's name, several under
    "name.key"."""
    streams = dict(generators)
    for name, module in net.named_modules():
        owned = module.generators()
        for key, generator in owned.items():
            streams[_LAYER_RNG + (name if len(owned) == 1 else f"{name}.{key}")] = generator
    return streams


def capture(
    net: Sequential,
    optimizer: Optimizer,
    generators: Mapping[str, np.random.Generator],
    epoch: int,
    step: int,
    average: WeightAverage | None = None,
) -> Checkpoint:
    """A snapshot of the training state after `epoch` (copies: later training leaves it alone)."""
    streams = _generators_with_layers(net, generators)
    return Checkpoint(
        epoch=int(epoch),
        step=int(step),
        net=net.state_dict(),
        optim=optimizer.state_dict(),
        rng={name: g.bit_generator.state for name, g in streams.items()},
        average={} if average is None else average.state_dict(),
    )


def save(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; raises CheckpointError naming the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_VERSION),
        "epoch": np.array(checkpoint.epoch),
        "step": np.array(checkpoint.step),
        "rng": np.frombuffer(json.dumps(checkpoint.rng, sort_keys=True).encode(), np.uint8),
    }
    arrays.update({_NET + k: v for k, v in checkpoint.net.items()})
    arrays.update({_OPTIM + k: v for k, v in checkpoint.optim.items()})
    arrays.update({_AVERAGE + k: v for k, v in checkpoint.average.items()})
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise CheckpointError(
            f"could not write checkpoint {path}: {e.strerror or e} (is the disk full or the "
            f"folder read-only?); the previous checkpoint, if any, is unchanged"
        ) from e
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save`; raises CheckpointError naming the file and problem."""
    path = Path(path)
    hint = "delete it and resume from an earlier copy, or train again from the start"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); {hint}"
        ) from e
    missing = [k for k in ("format", "epoch", "step", "rng") if k not in arrays]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint: "
                              f"missing {', '.join(missing)}; {hint}")
    version = _integer(arrays, "format", path, hint)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {version}; this code reads "
                              f"format {FORMAT_VERSION}")
    return Checkpoint(
        epoch=_integer(arrays, "epoch", path, hint),
        step=_integer(arrays, "step", path, hint),
        net={k[len(_NET):]: v for k, v in arrays.items() if k.startswith(_NET)},
        optim={k[len(_OPTIM):]: v for k, v in arrays.items() if k.startswith(_OPTIM)},
        rng=_generator_states(arrays["rng"], path, hint),
        average={k[len(_AVERAGE):]: v for k, v in arrays.items() if k.startswith(_AVERAGE)},
    )


def _integer(arrays: Mapping[str, np.ndarray], key: str, path: Path, hint: str) -> int:
    value = arrays[key]
    if value.shape != () or value.dtype.kind not in "iu" or value < 0:
        raise CheckpointError(f"checkpoint {path}: {key!r} should be one integer >= 0, found "
                              f"{value.tolist()!r:.60} ({value.dtype}, shape {value.shape}); "
                              f"{hint}")
    return int(value)


def _generator_states(raw: np.ndarray, path: Path, hint: str) -> dict[str, dict]:
    try:
        rng = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: the generator states ('rng') are corrupt "
                              f"({e}); {hint}") from e
    if not isinstance(rng, dict) or not all(isinstance(v, dict) for v in rng.values()):
        raise CheckpointError(f"checkpoint {path}: 'rng' should map stream names to generator "
                              f"states, found {json.dumps(rng)[:200]}; {hint}")
    return rng


def check_fits(
    checkpoint: Checkpoint,
    net: Sequential,
    optimizer: Optimizer,
    generators: Mapping[str, np.random.Generator],
    source: str = "checkpoint",
    average: WeightAverage | None = None,
) -> dict[str, np.ndarray]:
    """Whether `checkpoint` can be restored into this net, optimiser and generators (and
    `average`), changing none of them: CheckpointError saying what differs, else the
    weights to load. Every generator of the run must be in the checkpoint and vice versa,
    each state valid, the arrays must fit the network and be finite."""
    streams = _generators_with_layers(net, generators)
    _check_streams(checkpoint.rng, streams, source)
    try:
        weights = net.check_state_dict(checkpoint.net, source=source)
        if average is not None and checkpoint.average:
            net.check_state_dict({k: v for k, v in checkpoint.average.items()
                                  if k != "updates"}, source=f"{source} (weight average)")
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    _check_optimizer_state(checkpoint.optim, net.params, source)
    for part, arrays in (("weights", checkpoint.net), ("optimiser state", checkpoint.optim),
                         ("weight average", checkpoint.average)):
        bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:  # training on from these diverges at once, or has already
            raise CheckpointError(f"{source}: its {part} {', '.join(bad[:3])} are not finite")
    return weights


def restore(
    checkpoint: Checkpoint,
    net: Sequential,
    optimizer: Optimizer,
    generators: Mapping[str, np.random.Generator],
    source: str = "checkpoint",
    average: WeightAverage | None = None,
) -> None:
    """Put the saved state into a freshly built net, optimiser and generators (in place),
    and into `average` when given (a checkpoint without one restarts it from the weights).
    All of it is checked first (check_fits), so a refused checkpoint changes nothing."""
    weights = check_fits(checkpoint, net, optimizer, generators, source, average)
    net.load_state_dict(weights, source=source)
    if average is not None:
        if checkpoint.average:
            average.load_state_dict(checkpoint.average)
        else:
            average.shadow, average.updates = net.state_dict(), 0
    optimizer.load_state_dict(checkpoint.optim)
    for name, g in _generators_with_layers(net, generators).items():
        g.bit_generator.state = checkpoint.rng[name]


def _check_streams(saved: Mapping[str, dict], streams: Mapping[str, np.random.Generator],
                   source: str) -> None:
    missing = sorted(streams.keys() - saved.keys())
    unexpected = sorted(saved.keys() - streams.keys() - set(RETIRED_STREAMS))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not fit this run: random streams missing "
                              f"{missing or 'none'}, unexpected {unexpected or 'none'}")
    for name, g in streams.items():
        kind = type(g.bit_generator)
        state = saved[name]
        if state.get("bit_generator") != kind.__name__:
            raise CheckpointError(f"{source}: stream {name!r} was saved from "
                                  f"{state.get('bit_generator')}, the run uses {kind.__name__}")
        try:
            # NumPy validates a state only when it is set: try it on a throwaway generator.
            kind().state = state
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise CheckpointError(f"{source}: the saved state of stream {name!r} is "
                                  f"malformed ({type(e).__name__}: {e})") from e


def _check_optimizer_state(flat: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                           source: str) -> None:
    steps = np.asarray(flat.get("steps"))
    if steps.shape != () or steps.dtype.kind not in "iu":
        raise CheckpointError(f"{source}: optimiser state 'steps' should be one integer, "
                              f"found {flat.get('steps')!r:.100}")
    for key, value in flat.items():
        if key == "steps":
            continue
        name = key.rpartition("/")[0]
        array = np.asarray(value)
        if name not in params or array.shape != params[name].shape:
            raise CheckpointError(f"{source}: optimiser state {key!r} does not fit the network")
        if array.dtype.kind not in "iuf":
            raise CheckpointError(f"{source}: optimiser state {key!r} has dtype {array.dtype}, "
                                  "not a number type")


class Checkpointer:
    """A `cnn.training.fit` callback that saves a checkpoint every `every` epochs.

    It overwrites one file, `path`, and calls `on_saved(path, epoch)` after each save
    (e.g. to upload it). Put it last among the callbacks, so that it sees the state after
    every other callback has run. The optimiser step is `epoch * steps_per_epoch`, which is
    how `fit(start_epoch=...)` recomputes it.
    """

    def __init__(self, path: str | os.PathLike, net: Sequential, optimizer: Optimizer,
                 generators: Mapping[str, np.random.Generator], steps_per_epoch: int,
                 every: int = 1, on_saved=None, average: WeightAverage | None = None) -> None:
        self.path, self.every, self.on_saved = Path(path), every, on_saved
        self.average = average
        self.net, self.optimizer, self.generators = net, optimizer, generators
        self.steps_per_epoch = steps_per_epoch
        self.last_epoch: int | None = None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.every <= 0 or epoch % self.every:
            return
        save(self.path, capture(self.net, self.optimizer, self.generators, epoch,
                                epoch * self.steps_per_epoch, self.average))
        self.last_epoch = epoch
        if self.on_saved is not None:
            self.on_saved(self.path, epoch)
