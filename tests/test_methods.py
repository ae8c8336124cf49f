"""The method registry as a plug-in author meets it: registering, building from plain data (run.yaml),
the parameter schema, the experiment table's schema, importing plug-ins, ToMe through the encoder, and
the run identities of the experiment table."""

import copy
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import jsonschema
import pytest
import torch
import yaml

from centerclip.model import methods
from centerclip.model.builtin_methods import TokenMerging
from centerclip.model.clip import CLIP
from centerclip.model.methods import (ReductionMethod, SegmentResult, SegmentStage, build_method, import_plugins,
                                      method_class, method_names, params_schema, register_method)
from centerclip.model.video_encoder import TokenReduction, encode_segments, pool_segments
from model_inputs import TINY, video_batch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import (  # noqa: E402
    EXPERIMENT_KEYS, SCHEMA_PATH, ConfigError, experiment_schema, load_experiments, load_plugins, method_params,
    run_yaml_contents, validate_config)

NAME = "_test_methods_staged"  # registered by the `staged` fixture only, never left in the registry


# A method with every kind of parameter the schema derivation knows: a tuple of nested dataclasses with
# bounds, a Literal, floats, an Optional int and an Optional nested dataclass, a bool, defaults or not.
@dataclass(frozen=True)
class _Stage:
    block: int = field(metadata={"schema": {"minimum": 0, "description": "after this many blocks"}})
    segments: int = field(default=1, metadata={"schema": {"minimum": 1}})
    share: float = 0.5


@dataclass(frozen=True)
class _Staged(ReductionMethod):
    stages: tuple[_Stage, ...]
    mode: Literal["fast", "slow"] = "fast"
    temperature: float = field(default=1.0, metadata={"schema": {"exclusiveMinimum": 0}})
    weights: tuple[float, ...] = ()
    knn: int | None = None
    first: Optional[_Stage] = None
    normalise: bool = False


@pytest.fixture
def registry():
    """Names registered during the test are removed from the registry afterwards (and plug-in modules
    imported from files are forgotten, so that another test can import them afresh)."""
    before, modules = set(methods._REGISTRY), set(sys.modules)
    yield methods._REGISTRY
    for name in set(methods._REGISTRY) - before:
        methods._REGISTRY.pop(name)
    for module in set(sys.modules) - modules:
        if module.startswith(("centerclip_plugin_", "_test_plugin_")):
            sys.modules.pop(module)


@pytest.fixture
def staged(registry):
    register_method(NAME)(_Staged)
    return _Staged


def test_a_registered_method_is_known_by_name(staged):
    assert NAME in method_names() and method_class(NAME) is staged and staged.name == NAME
    assert {"meanP", "centerclip", "token_merging"} <= set(method_names())  # beside the built-ins


def test_build_from_plain_data_converts_dicts_lists_and_ints(staged):
    m = build_method(NAME, {"stages": [{"block": 2, "segments": 4}, {"block": 5}], "temperature": 2,
                            "weights": [1, 0.5], "first": {"block": 1, "share": 1}, "knn": 3, "mode": "slow"})
    assert m.stages == (_Stage(2, 4), _Stage(5)) and isinstance(m.stages, tuple)
    assert m.temperature == 2.0 and type(m.temperature) is float
    assert m.weights == (1.0, 0.5) and type(m.weights[0]) is float
    assert m.first == _Stage(1, share=1.0) and type(m.first.share) is float
    assert (m.knn, m.mode, m.normalise) == (3, "slow", False)
    assert build_method(NAME, {"stages": [{"block": 0}], "first": None}).first is None
    # built values pass through unchanged
    assert build_method(NAME, {"stages": (_Stage(2),)}) == build_method(NAME, {"stages": [{"block": 2}]})


def test_to_config_leaves_defaults_out_and_round_trips(staged):
    plain = {"stages": [{"block": 2, "segments": 4}, {"block": 5, "share": 0.25}], "temperature": 2.0,
             "weights": [1.0], "first": {"block": 1}}
    m = build_method(NAME, plain)
    assert m.to_config() == plain  # segments=1, share=0.5, mode, knn, normalise: defaults, left out
    assert build_method(NAME, m.to_config()) == m
    given_defaults = build_method(NAME, {"stages": [{"block": 2, "segments": 1}], "mode": "fast"})
    assert given_defaults.to_config() == {"stages": [{"block": 2}]}
    assert TokenReduction(NAME, **plain).to_dict() == {"method": NAME, **plain}
    assert TokenReduction.from_dict({"method": NAME, **plain}) == TokenReduction(NAME, **plain)


def test_params_schema_from_type_hints_and_metadata(staged):
    schema = params_schema(NAME)
    assert schema["required"] == ["stages"]
    props = schema["properties"]
    assert props["stages"] == {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["block"],
        "properties": {"block": {"type": "integer", "minimum": 0, "description": "after this many blocks"},
                       "segments": {"type": "integer", "minimum": 1}, "share": {"type": "number"}}}}
    assert props["mode"] == {"enum": ["fast", "slow"]}
    assert props["temperature"] == {"type": "number", "exclusiveMinimum": 0}
    assert props["weights"] == {"type": "array", "items": {"type": "number"}}
    assert props["knn"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["first"]["anyOf"][1] == {"type": "null"} and props["first"]["anyOf"][0]["required"] == ["block"]
    assert props["normalise"] == {"type": "boolean"}


@pytest.mark.parametrize("row,ok", [
    ({"stages": [{"block": 6, "segments": 4}]}, True),
    ({"stages": [{"block": 6}], "mode": "slow", "temperature": 2, "weights": [1, 2.5], "knn": None,
      "first": {"block": 0, "share": 1}, "normalise": True}, True),
    ({"mode": "slow"}, False),                                     # stages is required
    ({"stages": [{"block": -1}]}, False),                          # metadata bound of a nested field
    ({"stages": [{"segments": 2}]}, False),                        # a nested required field
    ({"stages": [{"block": 1, "clusters": 4}]}, False),            # a nested unknown key
    ({"stages": [{"block": 1}], "mode": "medium"}, False),         # Literal -> enum
    ({"stages": [{"block": 1}], "temperature": 0}, False),         # exclusiveMinimum
    ({"stages": [{"block": 1}], "temperature": "hot"}, False),
    ({"stages": [{"block": 1}], "knn": 2.5}, False),               # Optional[int]
    ({"stages": [{"block": 1}], "normalise": 1}, False),           # bool is not int
    ({"stages": [{"block": 1}], "weights": ["a"]}, False),
])
def test_params_schema_validates_rows(staged, row, ok):
    schema = {"type": "object", "additionalProperties": False, **params_schema(NAME)}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(row))
    assert (not errors) == ok, [e.message for e in errors]


def test_unknown_parameters_are_named_with_the_method_and_its_parameters(staged):
    with pytest.raises(ValueError, match=rf"^method '{NAME}' takes no parameter tempreature \(its parameters: "
                                         r"stages, mode, temperature, weights, knn, first, normalise\)$"):
        build_method(NAME, {"stages": [{"block": 1}], "tempreature": 2})
    with pytest.raises(ValueError, match=rf"^{NAME}\.stages\[1\]: unknown key blok \(allowed: block, segments, "
                                         r"share\)$"):
        build_method(NAME, {"stages": [{"block": 1}, {"blok": 2}]})
    with pytest.raises(ValueError, match=r"^method 'meanP' takes no parameter block \(it has no parameters\)$"):
        build_method("meanP", {"block": 1})
    with pytest.raises(ValueError, match=r"unknown method 'nope' .*registered: meanP, .*plugins: list"):
        build_method("nope", {})


def test_a_taken_name_cannot_be_registered_by_another_class(staged):
    @dataclass(frozen=True)
    class Other(ReductionMethod):
        pass

    with pytest.raises(ValueError, match=rf"method '{NAME}' is already registered by "
                                         rf"{__name__}\._Staged"):
        register_method(NAME)(Other)
    with pytest.raises(ValueError, match=r"'centerclip' is already registered by "
                                         r"centerclip\.model\.builtin_methods\.CenterCLIP"):
        register_method("centerclip")(Other)
    assert method_class(NAME) is staged and method_class("centerclip").__name__ == "CenterCLIP"
    assert register_method(NAME)(staged) is staged  # the same class again (a module imported twice) is fine

    class NotADataclass(ReductionMethod):
        pass

    with pytest.raises(TypeError, match="must be a dataclass subclassing ReductionMethod"):
        register_method("_test_methods_plain")(NotADataclass)
    with pytest.raises(TypeError, match="must be a dataclass subclassing ReductionMethod"):
        register_method("_test_methods_plain")(_Stage)
    assert "_test_methods_plain" not in method_names()


# ---------------------------------------------------------------------------------- the experiment table

@pytest.fixture(scope="module")
def table():
    return yaml.safe_load((REPO / "config" / "experiments.yaml").read_text(encoding="utf-8"))


def _errors(schema, table):
    return [(list(e.absolute_path), e.message) for e in jsonschema.Draft202012Validator(schema).iter_errors(table)]


def test_experiment_schema_takes_a_registered_methods_parameters(staged, table):
    schema = experiment_schema(yaml.safe_load(SCHEMA_PATH.read_text()))
    assert _errors(schema, table) == []
    good = copy.deepcopy(table)
    good["experiments"]["new"] = {"dataset": "msrvtt", "backbone": "ViT-B/32", "method": NAME,
                                  "stages": [{"block": 6, "segments": 4}], "temperature": 0.5,
                                  "rows": {"beyond": "new"}}
    assert _errors(schema, good) == []
    misspelt = copy.deepcopy(good)
    misspelt["experiments"]["new"]["temperture"] = 0.5
    assert _errors(schema, misspelt) == [(["experiments", "new"],
                                          "Unevaluated properties are not allowed ('temperture' was unexpected)")]
    # another method's parameter is refused too: each row takes its own method's parameters only
    other = copy.deepcopy(good)
    other["experiments"]["new"]["r"] = 4
    assert _errors(schema, other) == [(["experiments", "new"],
                                       "Unevaluated properties are not allowed ('r' was unexpected)")]
    bad_bound = copy.deepcopy(good)
    bad_bound["experiments"]["new"]["stages"][0]["block"] = -1
    assert (["experiments", "new", "stages", 0, "block"], "-1 is less than the minimum of 0") in \
        _errors(schema, bad_bound)
    # a table naming a method that is not registered (its plug-in not imported) is refused
    unknown = copy.deepcopy(good)
    unknown["experiments"]["new"]["method"] = "_test_methods_unregistered"
    assert any(path == ["experiments", "new", "method"] for path, _ in _errors(schema, unknown))


def test_method_params_are_the_rows_other_keys():
    row = {"dataset": "msrvtt", "train_split": "9k", "backbone": "ViT-B/32", "method": "token_merging", "frames": 12,
           "lr": 1e-5, "epochs": 2, "segment_valid": "last", "rows": {"beyond": "x"}, "block": 6, "segments": 4,
           "r": 40}
    assert method_params(row) == {"block": 6, "segments": 4, "r": 40}
    assert method_params({**{key: "set" for key in EXPERIMENT_KEYS}, "r": 40}) == {"r": 40}


# ---------------------------------------------------------------------------------- plug-ins

PLUGIN = '''
from dataclasses import dataclass
from centerclip.model.methods import ReductionMethod, register_method


@register_method("{name}")
@dataclass(frozen=True)
class Plugged(ReductionMethod):
    block: int = 3
'''


def test_import_plugins_of_a_py_file_path(registry, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "plug_file.py").write_text(PLUGIN.format(name="_test_methods_file"))
    import_plugins(["sub/plug_file.py"], base=tmp_path)
    assert method_class("_test_methods_file").__module__.startswith("centerclip_plugin_plug_file_")
    import_plugins(["sub/plug_file.py"], base=tmp_path)  # imported once
    assert build_method("_test_methods_file", {"block": 2}).to_config() == {"block": 2}
    with pytest.raises(ValueError, match=r"plug-in 'sub/nope\.py': no such file .*sub/nope\.py"):
        import_plugins(["sub/nope.py"], base=tmp_path)


def test_two_plugin_files_of_one_name_are_two_modules_and_a_failed_one_is_imported_again(registry, tmp_path):
    for sub, name in (("a", "_test_methods_a"), ("b", "_test_methods_b")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "m.py").write_text(PLUGIN.format(name=name))
    import_plugins(["a/m.py", "b/m.py"], base=tmp_path)
    assert method_class("_test_methods_a").__module__ != method_class("_test_methods_b").__module__
    (tmp_path / "flaky.py").write_text("1 / 0\n")
    with pytest.raises(ValueError, match="'flaky.py' failed while importing"):
        import_plugins(["flaky.py"], base=tmp_path)
    (tmp_path / "flaky.py").write_text(PLUGIN.format(name="_test_methods_flaky"))
    import_plugins(["flaky.py"], base=tmp_path)  # fixed: imported now, not skipped as already there
    assert "_test_methods_flaky" in method_names()


def test_import_plugins_of_a_module_name(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_plugins puts base on sys.path
    (tmp_path / "_test_plugin_module.py").write_text(PLUGIN.format(name="_test_methods_module"))
    import_plugins(["_test_plugin_module"], base=tmp_path)
    assert method_class("_test_methods_module").__module__ == "_test_plugin_module"


def test_load_plugins_imports_relative_to_the_working_directory(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_test_plugin_cwd.py").write_text(PLUGIN.format(name="_test_methods_cwd"))
    (tmp_path / "plug_path.py").write_text(PLUGIN.format(name="_test_methods_path"))
    load_plugins({"plugins": ["_test_plugin_cwd", "plug_path.py"]})
    assert {"_test_methods_cwd", "_test_methods_path"} <= set(method_names())
    load_plugins({})  # no plug-ins
    load_plugins({"plugins": []})


@pytest.mark.parametrize("plugin,message", [
    ("_test_plugin_missing", r"^config key plugins: plug-in '_test_plugin_missing' cannot be imported \(No module "
                             r"named '_test_plugin_missing'\); give a module on the Python path or the path of its "
                             r"\.py file relative to /"),
    ("missing.py", r"^config key plugins: plug-in 'missing\.py': no such file /.*missing\.py$"),
    # the plug-in's own error, naming the plug-in
    ("_test_plugin_broken", r"^config key plugins: plug-in '_test_plugin_broken' failed while importing: "
                            r"ZeroDivisionError: division by zero"),
    # found, but something it imports is not: not "cannot be imported" (which would point at the wrong module)
    ("_test_plugin_needs", r"^config key plugins: plug-in '_test_plugin_needs' failed while importing: "
                           r"ModuleNotFoundError: No module named '_test_missing_dependency'"),
])
def test_a_bad_plugin_is_a_config_error_naming_the_key(registry, tmp_path, monkeypatch, plugin, message):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_test_plugin_broken.py").write_text("1 / 0\n")
    (tmp_path / "_test_plugin_needs.py").write_text("import _test_missing_dependency\n")
    with pytest.raises(ConfigError, match=message):
        load_plugins({"plugins": [plugin]})


def test_a_run_config_imports_its_plugins(registry, tmp_path, monkeypatch):
    """Every job reads run.yaml through RunConfig, which imports its `plugins` (relative to the working
    directory) before reading the reduction section."""
    from centerclip.training.settings import RunConfig

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(cfg)
    experiments, defaults, _ = load_experiments(cfg)
    rc = run_yaml_contents(cfg, experiments, defaults, "msrvtt9k_b32_meanP", 42)
    assert "plugins" not in rc  # a config without plug-ins writes none
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_test_plugin_run.py").write_text(PLUGIN.format(name="_test_methods_run"))
    rc = {**rc, "plugins": ["_test_plugin_run"], "reduction": {"method": "_test_methods_run", "block": 5}}
    assert "_test_methods_run" not in method_names()
    run = RunConfig.from_dict(rc)
    assert run.reduction.method == "_test_methods_run" and run.reduction.params == {"block": 5}


# ---------------------------------------------------------------------------------- ToMe through the encoder

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return CLIP(TINY).eval().visual  # 4 blocks, 4 x 4 patches per frame


def test_token_merging_trace_partitions_each_segments_patches(tiny, monkeypatch):
    """ToMe (B1 − 2, r = 3) on 2 videos of 4 frames (16 patches each): the stage keeps all 32 patch tokens
    of each 2-frame segment; blocks 1, 2, 3 merge 3 tokens each. At every block, the traced sources of a
    segment's tokens cover each patch of its frames exactly once, and each token's size is its patch count."""
    video, mask = video_batch()
    reduction = TokenReduction("token_merging", block=1, segments=2, r=3)
    sizes = {}
    run_block = TokenMerging.run_block

    def recording(self, index, block, state):
        state = run_block(self, index, block, state)
        sizes[index] = None if state.size is None else state.size.clone()
        return state

    monkeypatch.setattr(TokenMerging, "run_block", recording)
    trace = []
    with torch.no_grad():
        traced, traced_mask = encode_segments(tiny, video, mask, reduction, trace=trace)
        plain, plain_mask = encode_segments(tiny, video, mask, reduction)
    assert torch.equal(traced, plain) and torch.equal(traced_mask, plain_mask)  # tracing changes nothing
    assert traced_mask.tolist() == [[True, True], [True, True]]  # video 2: 3 real frames, both segments hold one
    (stage, kept), *merges = trace
    assert stage == SegmentStage(1, 2) and kept.dtype == torch.long
    patches = torch.arange(64).view(2, 32)  # segment s holds frames 2s, 2s+1: patches 32s .. 32s+31
    assert torch.equal(kept, patches.expand(2, 2, 32))
    assert [(index, tuple(src.shape), src.dtype) for index, src in merges] == [
        (1, (2, 2, 29, 64), torch.bool), (2, (2, 2, 26, 64), torch.bool), (3, (2, 2, 23, 64), torch.bool)]
    own = torch.zeros(2, 64, dtype=torch.bool)
    own[0, :32] = own[1, 32:] = True
    for index, src in merges:
        assert torch.equal(src.sum(dim=2), own.long().expand(2, 2, 64)), index  # every patch once, own segment
        size = sizes[index].view(2, 2, -1)
        assert torch.equal(size[..., 0], torch.ones(2, 2))  # the CLS token
        assert torch.equal(size[..., 1:], src.sum(dim=-1).float())  # each token: as many patches as it holds
    assert sizes[0] is None  # before the stage: frames as they are
    assert sizes[3].view(2, 2, -1)[..., 1:].sum(dim=-1).eq(32).all()


def test_token_merging_with_one_frame_segments_and_r0_is_meanp(tiny):
    video, mask = video_batch()
    with torch.no_grad():
        meanp = pool_segments(*encode_segments(tiny, video, mask, TokenReduction("meanP")))
        tome = pool_segments(*encode_segments(tiny, video, mask,
                                              TokenReduction("token_merging", block=2, segments=4, r=0)))
        merged = pool_segments(*encode_segments(tiny, video, mask,
                                                TokenReduction("token_merging", block=2, segments=4, r=4)))
    torch.testing.assert_close(tome, meanp, rtol=1e-5, atol=1e-6)
    assert (merged - meanp).abs().max() > 1e-4  # merging changes the features: the check has teeth


def test_token_merging_describes_itself_and_its_parameters():
    reduction = TokenReduction("token_merging", block=6, segments=4, r=40)
    assert reduction.describe() == "ToMe (B6 − 4, r = 40)"
    assert reduction.to_dict() == {"method": "token_merging", "block": 6, "segments": 4, "r": 40}
    assert params_schema("token_merging")["required"] == ["block", "segments", "r"]
    assert params_schema("token_merging")["properties"]["r"]["minimum"] == 0
    with pytest.raises(ValueError, match=r"method 'token_merging' takes no stages"):
        TokenReduction("token_merging", (SegmentStage(6, 4),), block=6, segments=4, r=40)


def test_a_segment_result_gives_positions_or_tokens():
    with pytest.raises(ValueError, match="either keep"):
        SegmentResult()
    with pytest.raises(ValueError, match="either keep"):
        SegmentResult(keep=torch.zeros(1, 1, dtype=torch.long), tokens=torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="groups goes with tokens"):
        SegmentResult(keep=torch.zeros(1, 1, dtype=torch.long), groups=torch.zeros(1, 1, dtype=torch.long))


# ---------------------------------------------------------------------------------- run identities

@pytest.mark.parametrize("config", ["config.yaml", "paper.yaml"])
def test_run_yaml_reduction_is_the_rows_method_and_parameters_as_given(config):
    """run.yaml's reduction section (part of every run's identity) is the experiment row's method and
    parameters as written: no defaults added, so registering methods as plug-ins changed no run identity;
    and the jobs read it back into the same reduction the workflow checked."""
    cfg = yaml.safe_load((REPO / "config" / config).read_text())
    validate_config(cfg)
    experiments, defaults, _ = load_experiments(cfg)
    assert any(exp["method"] != "meanP" for exp in experiments.values())
    for name, exp in experiments.items():
        reduction = run_yaml_contents(cfg, experiments, defaults, name, 42)["reduction"]
        given = {k: v for k, v in exp.items() if k not in EXPERIMENT_KEYS or k in ("method", "segment_valid")}
        assert reduction == given, name
        assert list(reduction)[0] == "method"
        rebuilt = TokenReduction.from_dict(reduction)
        assert rebuilt == TokenReduction(exp["method"], segment_valid=exp.get("segment_valid", "any"),
                                         **method_params(exp)), name
        assert dataclasses.is_dataclass(rebuilt.impl)


# ---------------------------------------------------------------------------------- messages a user meets

def _table_error(tmp_path, table, **config) -> str:
    """The ConfigError of load_experiments for an experiment table ``table`` (written to tmp_path)."""
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(table))
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(cfg)
    with pytest.raises(ConfigError) as err:
        load_experiments({**cfg, "experiments": str(path), **config})
    return str(err.value)


def test_a_bad_parameter_is_reported_not_the_unevaluated_properties_it_causes(staged, table, tmp_path):
    bad = copy.deepcopy(table)
    bad["experiments"]["new"] = {"dataset": "msrvtt", "backbone": "ViT-B/32", "method": "token_merging",
                                 "block": 6, "segments": 4, "r": -1, "rows": {"beyond": "new"}}
    assert _table_error(tmp_path, bad).endswith("key experiments.new.r: -1 is less than the minimum of 0")
    del bad["experiments"]["new"]["r"]
    assert _table_error(tmp_path, bad).endswith("key experiments.new: 'r' is a required property")


def test_a_plugin_row_without_its_plugin_says_to_list_it(table, tmp_path):
    bad = copy.deepcopy(table)
    bad["experiments"]["new"] = {"dataset": "msrvtt", "backbone": "ViT-B/32", "method": "random_drop",
                                 "block": 6, "rows": {"beyond": "new"}}
    message = _table_error(tmp_path, bad)
    assert "key experiments.new.method: 'random_drop' is not one of" in message
    assert "list its module under the config's plugins:" in message


def test_a_parameter_named_like_a_row_key_is_refused(registry):
    @dataclass(frozen=True)
    class Clash(ReductionMethod):
        frames: int = 4

    register_method("_test_methods_clash")(Clash)
    with pytest.raises(ConfigError, match=r"method '_test_methods_clash' \(.*Clash\) has parameter\(s\) frames, "
                                          r"which are keys of every experiment row"):
        experiment_schema(yaml.safe_load(SCHEMA_PATH.read_text()))


def test_a_missing_required_parameter_is_named():
    with pytest.raises(ValueError, match=r"method 'token_merging' needs parameter segments, r "):
        TokenReduction("token_merging", block=6)


def test_only_a_plugin_methods_runs_name_the_plugins(registry, tmp_path, monkeypatch):
    """Adding `plugins:` to a config must not rewrite (and so retrain) the other runs' run.yaml."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_test_plugin_rows.py").write_text(PLUGIN.format(name="_test_methods_rows"))
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(cfg)
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    table["experiments"]["plugged"] = {"dataset": "msrvtt", "backbone": "ViT-B/32", "method": "_test_methods_rows",
                                       "block": 6, "rows": {"beyond": "plugged"}}
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(table))
    plain = run_yaml_contents(cfg, *load_experiments(cfg)[:2], "msrvtt9k_b32_meanP", 42)
    cfg = {**cfg, "experiments": str(tmp_path / "experiments.yaml"), "plugins": ["_test_plugin_rows"]}
    experiments, defaults, _ = load_experiments(cfg)
    assert run_yaml_contents(cfg, experiments, defaults, "msrvtt9k_b32_meanP", 42) == plain
    assert run_yaml_contents(cfg, experiments, defaults, "plugged", 42)["plugins"] == ["_test_plugin_rows"]
