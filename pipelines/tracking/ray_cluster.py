"""Connect to an existing Ray cluster before hydra-ray-launcher does, without `object_store_memory`.

The plug-in always adds `object_store_memory` to `ray.init`'s arguments (a CI workaround meant for local
instances), and Ray refuses that argument when `address` connects to a running cluster. This callback runs
before the launcher (Hydra calls `on_multirun_start` first) and, when `hydra.launcher.ray.init.address` is
set, connects with the user's other `init` arguments; the plug-in then finds Ray initialised and launches.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class ConnectRayCluster(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        if not str(launcher.get("_target_", "")).endswith("ray_launcher.RayLauncher"):
            return
        init = OmegaConf.to_container(launcher.ray.init, resolve=True) or {}
        assert isinstance(init, dict)
        if not init.get("address"):
            return
        import ray

        if not ray.is_initialized():
            ray.init(**{str(k): v for k, v in init.items() if k != "object_store_memory"})
