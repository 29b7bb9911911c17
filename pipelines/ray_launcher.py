"""hydra-ray-launcher, fixed for existing clusters.

The plug-in always adds `object_store_memory` to `ray.init`'s arguments (a CI workaround for local
instances); Ray refuses that argument when `address` connects to a running cluster. With an address, this
launcher connects first without it; the plug-in then finds Ray initialised and launches as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as PluginRayLauncher
from omegaconf import OmegaConf


class RayLauncher(PluginRayLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        import ray

        init = OmegaConf.to_container(self.ray_cfg.init, resolve=True) or {}
        assert isinstance(init, dict)
        if init.get("address") and not ray.is_initialized():
            ray.init(**{str(k): v for k, v in init.items() if k != "object_store_memory"})
        return super().launch(job_overrides, initial_job_idx)
