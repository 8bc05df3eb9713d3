"""The authors' recipes as presets: their README ablation ladder and their ImageNet recipe.

A recipe is a set of ``TrainConfig`` fields and method options; ``resolve_recipe`` layers
``defaults <- recipe <- the user's explicit settings``. Names:

- the ladder (method recipes), each setting exactly the flags the authors' command sets
  (plus their trainer's BN re-estimation after each epoch, on unless ``--no_rebn``):

  ============================================  ==========================================================
  ``ct``                                        ``--epoch=200 --kl_coef=0`` (ST with a zero KL weight: the
                                                sub-net still runs, adds no gradient)
  ``st``                                        ``--epoch=200``
  ``st+kl-``                                    ``+ --norm_kd --amplitude=1 --Temp=1``
  ``st+kl-+snet6``                              ``+ --multi_Snet=6``
  ``st+kl-+snet6+small-inputs``                 ``+ --Snet_Dtrans --Dtrans=Dtrans7``
  ``st+kl-+snet6+small-inputs+space3`` (ST++)   ``+ --sample_space=space3 --train_crop_size=200
                                                --val_resize_size=240``
  ============================================  ==========================================================

- ``imagenet-r50``: their ImageNet trainer's defaults with the final run's crop sizes:
  ResNet-50, 200 epochs, batch 512, lr 0.2, SGD momentum 0.9 Nesterov, weight decay 1e-4 on
  every parameter, per-iteration cosine to 0, no warm-up, fc initialised N(0, 0.01), BN
  re-estimation after each epoch on 2000 training images, RandomResizedCrop 200 + flip +
  ColorJitter 0.4 + PCA lighting 0.1, validation resize 240 + center crop 224. Alone it trains
  the final rung (ST++); ``imagenet-r50,<rung>`` trains another rung with it.

The data flags (train crop, validation resize/crop, jitter, lighting) act on images decoded
from files; they belong to the ImageNet recipe, and a ladder rung's crop flags apply only
together with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECIPES", "RECIPE_CHOICES", "STPP_RUNG", "Recipe", "resolve_recipe"]


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    authors_flags: str
    config: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    data_config: dict[str, Any] = field(default_factory=dict)  # only with a data recipe

    @property
    def is_data_recipe(self) -> bool:
        return self.method is None


_RUNG = {"epochs": 200, "bn_reestimate": True}
_KL_MINUS = {"kl_minus": True, "amplitude": 1.0, "temperature": 1.0}

_LADDER = [
    Recipe("ct", "common training as the authors run it: ST with a zero KL weight", "--epoch=200 --kl_coef=0",
           _RUNG, "st", {"kl_weight": 0.0}),
    Recipe("st", "stimulative training: 1 sub-net, KL at T=1, full space", "--epoch=200", _RUNG, "st", {}),
    Recipe("st+kl-", "ST with KL- (layer-normed logits, amplitude 1, T=1)",
           "--epoch=200 --norm_kd --amplitude=1 --Temp=1", _RUNG, "st", dict(_KL_MINUS)),
    Recipe("st+kl-+snet6", "ST + KL- with 6 sub-nets per step",
           "--epoch=200 --norm_kd --amplitude=1 --Temp=1 --multi_Snet=6", _RUNG, "st",
           {**_KL_MINUS, "n_subnets": 6}),
    Recipe("st+kl-+snet6+small-inputs", "... + random smaller inputs for the sub-nets (Dtrans7)",
           "--epoch=200 --norm_kd --amplitude=1 --Temp=1 --multi_Snet=6 --Snet_Dtrans --Dtrans=Dtrans7", _RUNG, "st",
           {**_KL_MINUS, "n_subnets": 6, "small_inputs": True, "min_scale": 0.43}),
    Recipe("st+kl-+snet6+small-inputs+space3", "ST++ as published: ... + the restricted space3",
           "--epoch=200 --norm_kd --amplitude=1 --Temp=1 --multi_Snet=6 --Snet_Dtrans --Dtrans=Dtrans7 "
           "--val_resize_size=240 --train_crop_size=200 --sample_space=space3", _RUNG, "stpp",
           {**_KL_MINUS, "n_subnets": 6, "small_inputs": True, "min_scale": 0.43, "space": "space3"},
           data_config={"image_size": 200, "val_resize": 240}),
]

_IMAGENET = Recipe(
    "imagenet-r50", "the authors' ImageNet ResNet-50 trainer (final run's crops); alone it trains ST++",
    "train.py defaults (--batch_size=512 --lr=0.2 --weight_decay=1e-4 --jitter_coef=0.4 --light_coef=0.1, "
    "nesterov, fc N(0,0.01), rebn) with --train_crop_size=200 --val_resize_size=240",
    {"model": "resnet50", "epochs": 200, "batch_size": 512, "lr": 0.2, "momentum": 0.9, "nesterov": True,
     "weight_decay": 1e-4, "min_lr": 0.0, "bn_reestimate": True, "bn_reestimate_images": 2000,
     "fc_init_std": 0.01, "image_size": 200, "val_resize": 240, "val_crop": 224, "color_jitter": 0.4,
     "lighting": 0.1},
)

RECIPES: dict[str, Recipe] = {r.name: r for r in [*_LADDER, _IMAGENET]}
STPP_RUNG = _LADDER[-1].name  # ST++ as published, alias "st++"; also what the data recipe trains alone
_ALIASES = {"st++": STPP_RUNG, "stpp": STPP_RUNG}

#: Every distinct recipe text ``--recipe`` takes, in menu order: the ladder, the data recipe
#: alone (= with ST++), then the data recipe with each other rung (``imagenet-r50,st``).
RECIPE_CHOICES: tuple[str, ...] = (*(r.name for r in _LADDER), _IMAGENET.name,
                                   *(f"{_IMAGENET.name},{r.name}" for r in _LADDER if r.name != STPP_RUNG))


def _lookup(name: str) -> Recipe:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)} "
                         "(or 'imagenet-r50,<ladder name>')")
    return RECIPES[key]


def resolve_recipe(text: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """``text`` (``NAME`` or ``imagenet-r50,NAME``) -> (config fields, method, method options).

    The config fields include ``recipe`` (the canonical name) so a run records what it used.
    """
    parts = [_lookup(p) for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty recipe name")
    data = [r for r in parts if r.is_data_recipe]
    ladder = [r for r in parts if not r.is_data_recipe]
    if len(data) > 1 or len(ladder) > 1:
        raise ValueError(f"recipe {text!r} combines two of a kind; give at most one of imagenet-r50 and one "
                         "ladder name, separated by a comma")
    rung = ladder[0] if ladder else RECIPES[STPP_RUNG]
    config: dict[str, Any] = dict(rung.config)
    if data:
        config.update(data[0].config)
        config.update(rung.data_config)
    assert rung.method is not None
    config["recipe"] = ",".join(r.name for r in (data + ladder))
    config["method"] = rung.method
    return config, rung.method, dict(rung.method_options)
