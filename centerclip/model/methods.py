"""Token-reduction methods as plug-ins: the interface, the registry and the parameter plumbing.

A method is a frozen dataclass of its parameters that subclasses :class:`ReductionMethod`, registered
by name with :func:`register_method`. Its fields are the keys an experiment row gives beside
``method: <name>``; from them come the row's schema (:func:`params_schema`), the run.yaml
``reduction`` section and so the run identity, and the tables' setting text (:meth:`describe`).

A method acts in one or both of two places of the vision transformer (see
:func:`centerclip.model.video_encoder.encode_segments`):

- **between blocks, on a segment's tokens**: :meth:`ReductionMethod.segment_stages` lists
  :class:`SegmentStage` s (after block ``block``, cut each video's sequences into ``segments``);
  the encoder makes each segment's CLS token the mean of its frames' and hands the patch tokens of
  its frames (frame-major) to :meth:`ReductionMethod.reduce_segment`, which returns a
  :class:`SegmentResult`: the positions it keeps (CenterCLIP, sparse sampling) or new tokens
  (pooling), the latter optionally with the input token each one absorbed (a merge: sizes and
  source patches follow);
- **inside each block**: :meth:`ReductionMethod.run_block` runs block ``index`` on the
  :class:`TokenState` (the temporal and token shifts, ToMe's merging).

A minimal method (``docs/add-a-method.md`` walks through it)::

    @register_method("random_drop")
    @dataclass(frozen=True)
    class RandomDrop(ReductionMethod):
        block: int = 6
        segments: int = 4
        keep: int = 49

        def segment_stages(self):
            return (SegmentStage(self.block, self.segments),)

        def reduce_segment(self, stage, tokens, state):
            r, n, _ = tokens.shape
            order = torch.rand(r, n, device=tokens.device).argsort(dim=1)
            return SegmentResult(keep=order[:, :min(self.keep, n)].sort(dim=1).values)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

_REGISTRY: dict[str, type[ReductionMethod]] = {}


@dataclass(frozen=True)
class SegmentStage:
    """Where a between-block stage acts: at the input of block ``block + 1`` (after ``block`` blocks),
    on ``segments`` consecutive segments of each video's sequences."""

    block: int
    segments: int


@dataclass
class SegmentResult:
    """What :meth:`ReductionMethod.reduce_segment` returns for the patch tokens [R, N, W] of R segments.

    Either ``keep``, long [R, K]: the kept positions (the encoder gathers them; Figure 5's trace
    follows them to the video's patches), or ``tokens`` [R, K, W]: new tokens, with ``groups`` long
    [R, N] when they are merges of the input (``groups[r, i]`` = the output token input token i went
    into, −1 = dropped; sizes add up and source patches follow) or without (their sources are unknown:
    the trace reports None from then on, as for pooling's means over frames).
    """

    keep: Tensor | None = None
    tokens: Tensor | None = None
    groups: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.keep is None) == (self.tokens is None):
            raise ValueError("a SegmentResult gives either keep (positions) or tokens (new tokens)")
        if self.groups is not None and self.tokens is None:
            raise ValueError("SegmentResult.groups goes with tokens")


@dataclass
class TokenState:
    """The video's tokens between blocks, as a method sees them.

    ``x`` [R, L, W]: R = B·G sequences (G per video, video-major), CLS token first. ``mask`` bool
    [B, G]: which sequences hold real frames. ``size`` [R, L] or None (all ones): how many input
    patches each token stands for (ToMe's proportional attention weighs by it). ``source``: only while
    tracing, which of the video's T·P patches (``frame · P + patch``, P = ``patches`` per frame) each
    patch token is: long [R, L − 1]
    while every reduction kept tokens, bool [R, L − 1, T·P] once one merged them, None once their
    sources are unknown. ``trace``: the list :func:`encode_segments` was given, or None.
    """

    x: Tensor
    mask: Tensor
    frames: int
    patches: int
    training: bool
    size: Tensor | None = None
    source: Tensor | None = None
    trace: list | None = None

    @property
    def videos(self) -> int:
        return self.mask.shape[0]

    def membership(self) -> Tensor | None:
        """``source`` as bool [R, L − 1, T·P] (one-hot rows while tokens were only kept), or None."""
        if self.source is None or self.source.dtype == torch.bool:
            return self.source
        onehot = torch.zeros(*self.source.shape, self.frames * self.patches, dtype=torch.bool,
                             device=self.source.device)
        return onehot.scatter_(-1, self.source.unsqueeze(-1), True)


def traced_sources(state: TokenState) -> Tensor | None:
    """``state.source`` per video and sequence: long [B, G, K] or bool [B, G, K, T·P] (see
    :func:`encode_segments`), or None."""
    if state.source is None:
        return None
    return state.source.view(state.videos, state.mask.shape[1], *state.source.shape[1:])


class ReductionMethod:
    """Base of a token-reduction method; subclasses are frozen dataclasses of their parameters.

    Override :meth:`segment_stages` + :meth:`reduce_segment` (between blocks), :meth:`run_block`
    (inside blocks), or both. The defaults do nothing: the subclass without overrides is CLIP4Clip's
    meanP (frames encoded independently, features averaged).
    """

    name: ClassVar[str] = ""

    def segment_stages(self) -> Sequence[SegmentStage]:
        """The between-block stages, in block order (an object with ``block`` and ``segments``)."""
        return ()

    def reduce_segment(self, stage: Any, tokens: Tensor, state: TokenState) -> SegmentResult:
        """Reduce the patch tokens [R, N, W] of R = B·S segments (N = frames per segment · P,
        frame-major, raster order within a frame) at ``stage``. ``state`` is the state before the stage
        (its ``training`` flag, its ``size``)."""
        raise NotImplementedError(f"method {self.name!r} lists segment stages but does not reduce them")

    def run_block(self, index: int, block: nn.Module, state: TokenState) -> TokenState:
        """Run transformer block ``index`` (0-based) on ``state``; the default is the plain block."""
        state.x = block(state.x)
        return state

    def describe(self) -> str:
        """The setting as the tables print it, e.g. ``CenterCLIP (k-medoids++, B6 − 4, 49)``."""
        params = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))  # type: ignore
        return f"{self.name} ({params})" if params else self.name

    def to_config(self) -> dict[str, Any]:
        """The parameters as plain data (run.yaml), fields at their default left out."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if _has_no_default(f) or getattr(self, f.name) != _default(f)}


def register_method(name: str):
    """Class decorator: register a :class:`ReductionMethod` dataclass under ``name`` (the value of
    ``method:`` in an experiment row). Registering a name twice with another class is an error."""
    def register(cls: type[ReductionMethod]) -> type[ReductionMethod]:
        if not (isinstance(cls, type) and issubclass(cls, ReductionMethod) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"register_method({name!r}): {cls!r} must be a dataclass subclassing ReductionMethod")
        known = _REGISTRY.get(name)
        # the same class imported again (a module reloaded) may re-register; another class may not
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"token-reduction method {name!r} is already registered by "
                             f"{known.__module__}.{known.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return register


def is_plugin_method(name: str) -> bool:
    """Whether method ``name`` comes from a plug-in (not from :mod:`centerclip.model.builtin_methods`)."""
    return method_class(name).__module__ != "centerclip.model.builtin_methods"


def method_names() -> tuple[str, ...]:
    """The registered method names (built-in ones and those of imported plug-ins)."""
    return tuple(_REGISTRY)


def method_class(name: str) -> type[ReductionMethod]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (token reduction); registered: {', '.join(_REGISTRY)} "
                         "(a plug-in's module must be imported first: the config's plugins: list)") from None


def build_method(name: str, params: Mapping[str, Any]) -> ReductionMethod:
    """The method ``name`` with ``params`` (plain data as in run.yaml, or already-built values)."""
    cls = method_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"method {name!r} takes no parameter {', '.join(unknown)}"
                         + (f" (its parameters: {', '.join(fields)})" if fields else " (it has no parameters)"))
    missing = [f for f, spec in fields.items() if _has_no_default(spec) and f not in params]
    if missing:
        raise ValueError(f"method {name!r} needs parameter {', '.join(missing)} (its parameters: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(hints[k], v, f"{name}.{k}") for k, v in params.items()})


def import_plugins(plugins: Sequence[str], base: str | Path | None = None) -> None:
    """Import each plug-in: a module name (found on sys.path, with ``base`` first) or the path of a
    ``.py`` file (relative to ``base``); ``base`` defaults to the working directory, where the workflow
    runs every job. Importing registers its methods; importing twice does nothing. ValueError naming
    the plug-in when it cannot be found or fails while importing."""
    base = Path.cwd() if base is None else Path(base)
    for plugin in plugins:
        try:
            _import_plugin(plugin, base)
        except ValueError:
            raise
        except Exception as exc:  # the plug-in's own code failed: say which plug-in, and what
            raise ValueError(f"plug-in {plugin!r} failed while importing: {type(exc).__name__}: {exc}") from exc


def _import_plugin(plugin: str, base: Path) -> None:
    if plugin.endswith(".py"):
        path = (base / plugin).resolve()
        if not path.is_file():
            raise ValueError(f"plug-in {plugin!r}: no such file {path}")
        # named after the resolved path, so that a/m.py and b/m.py are two modules
        module_name = f"centerclip_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if module_name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # a retry imports it again instead of finding a half module
            raise
        return
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        if exc.name != plugin and not plugin.startswith(f"{exc.name}."):
            raise  # the plug-in was found; something it imports was not
        raise ValueError(f"plug-in {plugin!r} cannot be imported ({exc}); give a module on the Python path "
                         f"or the path of its .py file relative to {base}") from None


# --- parameters <-> plain data <-> JSON schema, from the dataclass's type hints --------------------------

def _has_no_default(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if _has_no_default(f) or getattr(value, f.name) != _default(f)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` (plain data) as the type ``hint`` says: dataclasses from mappings, tuples from lists."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        names = {f.name for f in dataclasses.fields(hint)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"{where}: unknown key {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
        sub = typing.get_type_hints(hint)
        return hint(**{k: _convert(sub[k], v, f"{where}.{k}") for k, v in value.items()})
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_JSON_TYPES = {int: {"type": "integer"}, float: {"type": "number"}, bool: {"type": "boolean"},
               str: {"type": "string"}}


def _type_schema(hint: Any) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_schema(a) for a in args if a is not type(None)]
        schema = parts[0] if len(parts) == 1 else {"anyOf": parts}
        if type(None) in args:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is tuple:
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return {"type": "array", **({"items": _type_schema(item)} if item is not None else {})}
    if dataclasses.is_dataclass(hint):
        return _dataclass_schema(hint)
    return dict(_JSON_TYPES.get(hint, {}))


def _dataclass_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        schema = _type_schema(hints[f.name])
        # dataclasses.field(metadata={"schema": {...}}) adds bounds and a description
        schema.update(f.metadata.get("schema", {}))
        props[f.name] = schema
    return {"type": "object", "additionalProperties": False, "properties": props,
            "required": [f.name for f in dataclasses.fields(cls) if _has_no_default(f)]}


def params_schema(name: str) -> dict:
    """The JSON-schema fragment of method ``name``'s parameters (``properties`` and ``required`` of an
    experiment row), derived from its dataclass fields and their ``metadata["schema"]``."""
    schema = _dataclass_schema(method_class(name))
    return {"properties": schema["properties"], "required": schema["required"]}
