"""The base of the trainable kinds that train one network (or one set of networks) per group.

A group is either every class at once -- key ``"all"``: a conditional model, or one model for all
images -- or one class -- key ``"class<i>"``: the per-class modes. The base owns the key scheme,
the state tensors of the groups (``<role>.<group>.<parameter>``, one ``nn.ModuleDict`` per role),
rebuilding them on load, the device and the seeded fit (``seeded_torch``). Models saved before the
key scheme was shared named a class group by its bare index (``"vae.3.…"``); they load unchanged.
"""
from __future__ import annotations

from typing import Callable, ClassVar, Optional

import torch
from torch import nn

from .base import Generator, compute_device, tensors_under

ALL_CLASSES = "all"


def class_group(index: int) -> str:
    """The group key of class ``index``."""
    return f"class{int(index)}"


def group_class(key: str) -> Optional[int]:
    """The class index of a group key (None for ``"all"``); accepts the old bare-index keys."""
    if key == ALL_CLASSES:
        return None
    digits = key.removeprefix("class")
    if not digits.isdigit():
        raise ValueError(f"group key {key!r}: expected 'all' or 'class<index>'")
    return int(digits)


def normalise_group(key: str) -> str:
    """``"3"`` (the old scheme) -> ``"class3"``; other keys unchanged."""
    return class_group(int(key)) if key.isdigit() else key


class GroupedGenerator(Generator):
    """A kind with one network set per group. Subclasses declare ``roles`` (state-tensor prefix ->
    the attribute holding that role's ``nn.ModuleDict`` keyed by group) and ``per_class_modes``
    (config modes that train one group per class; every other mode trains the one group "all")."""

    roles: ClassVar[dict[str, str]] = {}
    per_class_modes: ClassVar[tuple[str, ...]] = ("per_class",)

    @property
    def per_class(self) -> bool:
        """Whether this model trains one group per class."""
        return getattr(self.config, "mode", None) in self.per_class_modes

    def group_of(self, class_index: int) -> str:
        """The group whose network makes class ``class_index``."""
        return class_group(class_index) if self.per_class else ALL_CLASSES

    def training_groups(self) -> list[str]:
        """The groups a fit trains, in order: "all", or one per class."""
        return [class_group(i) for i in range(len(self.class_names))] if self.per_class else [ALL_CLASSES]

    @staticmethod
    def device() -> torch.device:
        """Where this kind trains and samples (the GPU when there is one)."""
        return compute_device()

    def role_modules(self, role: str) -> nn.ModuleDict:
        """The ``nn.ModuleDict`` (group -> network) of ``role``."""
        return getattr(self, self.roles[role])

    def grouped_state_tensors(self) -> dict[str, torch.Tensor]:
        """Every role's networks as ``<role>.<group>.<parameter>`` tensors."""
        return {f"{role}.{key}.{name}": value for role in self.roles
                for key, module in self.role_modules(role).items() for name, value in module.state_dict().items()}

    def load_grouped_state(self, tensors: dict[str, torch.Tensor],
                           build: Callable[[str], dict[str, nn.Module]]) -> list[str]:
        """Rebuild every role's networks from ``grouped_state_tensors`` output: ``build(group)``
        returns a fresh network per role; each gets its weights (strictly) and eval mode. Returns
        the groups, in order."""
        first = next(iter(self.roles))
        found = {name.split(".")[1] for name in tensors if name.startswith(f"{first}.")}
        groups = sorted(found, key=lambda key: (-1 if key == ALL_CLASSES else group_class(key)))
        rebuilt: dict[str, nn.ModuleDict] = {role: nn.ModuleDict() for role in self.roles}
        for stored in groups:
            key = normalise_group(stored)
            networks = build(key)
            for role, module in networks.items():
                prefix = f"{role}.{stored}."
                module.load_state_dict(tensors_under(tensors, prefix))
                rebuilt[role][key] = module.eval()
        for role, modules in rebuilt.items():
            setattr(self, self.roles[role], modules)
        return [normalise_group(key) for key in groups]
