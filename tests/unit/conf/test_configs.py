"""Every config option composes against its schema and builds a valid DAG, without running; values are checked
when the config is composed, and the pipeline hands each stage what the config says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from pipelines.engine.dag import build_dag
from pipelines.engine.errors import ConfigError
from pipelines.engine.preflight import preflight
from pipelines.engine.schema import register_configs
from tests.helpers.configs import compose_config
from tests.helpers.paths import CONF_DIR, REPO

register_configs()


GROUPS = ["model", "dataset", "split", "tracking", "pipeline"]


REQUIRED = {  # options whose mandatory keys a user must give
    "model=keras": ["model.path=m.keras"],
    "model=saved_model": ["model.path=sm"],
    "model=frozen_graph": ["model.path=g.pb", "model.inputs=[x]", "model.outputs=[y]"],
    "dataset=npz": ["dataset.path=d.npz"],
    "split=manual": ["split.outputs=[t]"],
}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def _cases() -> list[list[str]]:
    cases = [[f"{g}={o}", *REQUIRED.get(f"{g}={o}", [])] for g in GROUPS for o in _options(g)]
    cases += [[f"+experiment={e}"] for e in _options("experiment")] if (Path(CONF_DIR) / "experiment").is_dir() else []
    return cases


@pytest.mark.parametrize("overrides", _cases(), ids=lambda o: o[0])
def test_every_option_composes_and_builds_a_dag(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    nodes = build_dag(cfg["pipeline"]["stages"], cfg["variants"])
    assert [n.stage for n in nodes][:1] == ["load"]
    assert {n.variant for n in nodes if n.variant} == set(cfg["variants"])


def test_default_selects_all_six_variants_each_under_its_own_key() -> None:
    cfg = compose_config([])
    assert sorted(cfg["variants"]) == ["dynamic", "fp16", "fp32", "int16x8", "int8", "int8_io"]
    assert cfg["variants"]["int8_io"]["io_dtype"] == "int8"
    assert cfg["variants"]["int8"]["io_dtype"] == "float32"
    assert cfg["variants"]["fp16"]["mode"] == "fp16"


def test_variant_subset_and_override() -> None:
    cfg = compose_config(["variants=[fp16,int8_io]", "variants.int8_io.io_dtype=uint8"])
    assert sorted(cfg["variants"]) == ["fp16", "int8_io"]
    assert cfg["variants"]["int8_io"]["io_dtype"] == "uint8"


@pytest.mark.parametrize(
    "override",
    ["model.pth=x.keras", "variants.int8.mode=int4", "split=sideways", "variants=[fp8]", "calibrate.count=3"],
)
def test_typos_fail_at_compose_time(override: str) -> None:
    """Hydra rejects them with a message naming the bad key or option (the CLI maps this to exit 2)."""
    with pytest.raises((ConfigCompositionException, MissingConfigException)) as err:
        compose_config([override])
    bad = override.split("=")[1 if override.startswith(("split=", "variants=[")) else 0].strip("[]").split(".")[-1]
    assert bad in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model=keras"], "model.path"),
        (["model=frozen_graph", "model.path=graph.pb"], "model.inputs"),
        (["dataset=npz"], "dataset.path"),
    ],
)
def test_missing_mandatory_values_are_config_errors(
    overrides: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "graph.pb").write_bytes(b"\n\x05input")
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        preflight(compose_config(overrides), tmp_path)


def test_schema_types_values() -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["calibrate.num_samples=7"])
    assert OmegaConf.to_container(cfg.calibrate)["num_samples"] == 7


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["calibrate.num_samples=0"], "`calibrate.num_samples=0`"),
        (["variants=[int8_mixed]", "variants.int8_mixed.search.beam=0"], "`variants.int8_mixed.search.beam=0`"),
        (["variants.int8.backend=aeq"], "`variants.int8.backend=aeq`"),
        (["variants.fp32.gates.max_rmse=-1"], "`variants.fp32.gates.max_rmse=-1.0`"),
        (["runtime.stage_timeout_s=-1"], "`runtime.stage_timeout_s=-1.0`"),
        (["runtime.progress_every_s=0"], "`runtime.progress_every_s=0.0`"),
        (["benchmark.num_threads=0"], "`benchmark.num_threads`"),
    ],
)
def test_values_out_of_range_fail_at_compose_time(overrides: list[str], named: str) -> None:
    """Each stage's config checks its own ranges when composed; the message names the full key to fix."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        compose_config(overrides)


def test_variants_sharing_a_gate_preset_compose_the_same_limits() -> None:
    cfg = compose_config(["variants=[int8,int8_io,int8_mixed,aeq_a8w8,aeq_recipe]"])
    gates = [v["gates"] for v in cfg["variants"].values()]
    assert all(g == gates[0] for g in gates) and gates[0]["max_relative_rmse"] == 0.15


def test_readme_postprocess_override_needs_no_plus() -> None:
    """README: `split.postprocess._target_=pkg.module.fn` composes (it used to fail: not in struct)."""
    from hydra import compose, initialize_config_dir

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["split.postprocess._target_=pkg.module.fn"])
        default = compose("config")
    assert cfg.split.postprocess._target_ == "pkg.module.fn"
    assert default.split.postprocess._target_ is None  # declared, unset: no tail


def test_the_pipeline_hands_label_output_to_the_reference_stage() -> None:
    from hydra import compose, initialize_config_dir

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=["dataset.label_output=probs"])
    from omegaconf import OmegaConf

    stages = OmegaConf.to_container(cfg.pipeline.stages, resolve=True)
    assert stages["reference"]["config"]["label_output"] == "probs"


def test_output_kinds_override_composes_and_an_unknown_kind_is_exit_2() -> None:
    """The override as the README writes it reaches the dataset config; a kind no metric knows fails at compose."""
    cfg = compose_config(["+dataset.output_kinds={probs: regression}"])
    assert cfg["dataset"]["output_kinds"] == {"probs": "regression"}
    with pytest.raises(ConfigError, match=re.escape("`dataset.output_kinds=")):
        compose_config(["+dataset.output_kinds={probs: banana}"])
