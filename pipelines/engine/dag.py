"""Build and validate the stage DAG declared in `conf/pipeline/*.yaml`, fanned out per variant."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from typing import Any

from pipelines.engine.errors import ConfigError


@dataclass(frozen=True)
class Node:
    """One stage invocation: a global stage, or one variant's copy of a per-variant stage."""

    stage: str
    target: str
    config: dict[str, Any]
    needs: tuple[str, ...] = ()
    variant: str | None = None
    upstream: dict[str, str] = field(default_factory=dict)  # argument name -> node id

    @property
    def id(self) -> str:
        return f"{self.stage}[{self.variant}]" if self.variant else self.stage


def build_dag(stages: dict[str, dict[str, Any]], variants: dict[str, dict[str, Any]]) -> list[Node]:
    """Return the nodes in a valid execution order, or raise ConfigError naming what is wrong."""
    if not stages:
        raise ConfigError("The pipeline declares no stages. Select one with `pipeline=default`.")
    for name, spec in stages.items():
        unknown = [need for need in spec.get("needs", []) if need not in stages]
        if unknown:
            raise ConfigError(
                f"Stage '{name}' needs {unknown}, which the pipeline does not declare. "
                f"Declared stages: {sorted(stages)}. Fix `needs` in the pipeline config."
            )
        if not spec.get("_target_"):
            raise ConfigError(f"Stage '{name}' has no `_target_`: name the function that implements it.")
    _check_acyclic(stages)

    per_variant = {name for name, spec in stages.items() if spec.get("per_variant")}
    for name, spec in stages.items():
        if name not in per_variant and any(need in per_variant for need in spec.get("needs", [])):
            raise ConfigError(
                f"Stage '{name}' runs once per pipeline but needs per-variant stage(s) "
                f"{[n for n in spec['needs'] if n in per_variant]}: mark it `per_variant: true`."
            )
    if per_variant and not variants:
        raise ConfigError("No variants are selected. Choose some, e.g. `'variants=[fp32,int8]'`.")

    nodes: dict[str, Node] = {}
    for name, spec in stages.items():
        for variant in sorted(variants) if name in per_variant else [None]:
            config = dict(spec.get("config") or {})
            if variant is not None:
                # Gates are judged by the engine after the stages ran: leaving them out of what stages receive
                # keeps them out of the cache keys, so a new limit re-judges cached results. A stage that
                # needs a limit (a search towards the gates) takes its own copy in its config.
                settings = {k: v for k, v in variants[variant].items() if k != "gates"}
                config["variant"] = {"name": variant, **settings}
            upstream = {need: (f"{need}[{variant}]" if need in per_variant else need) for need in spec.get("needs", [])}
            node = Node(
                stage=name,
                target=spec["_target_"],
                config=config,
                needs=tuple(upstream.values()),
                variant=variant,
                upstream=upstream,
            )
            nodes[node.id] = node

    sorter = graphlib.TopologicalSorter({nid: node.needs for nid, node in nodes.items()})
    return [nodes[nid] for nid in sorter.static_order()]


def _check_acyclic(stages: dict[str, dict[str, Any]]) -> None:
    sorter = graphlib.TopologicalSorter({name: spec.get("needs", []) for name, spec in stages.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        cycle = " -> ".join(err.args[1])
        raise ConfigError(f"The pipeline's stages form a cycle ({cycle}): remove one of these `needs`.") from None
