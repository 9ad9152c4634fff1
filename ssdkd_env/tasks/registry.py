"""The task registry: what a task is and how to get its real data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ssdkd_env.registry import Registry
from ssdkd_env.tasks.data import LabeledImages, load_digits_split, load_torchvision_split
from ssdkd_env.tasks.defaults import (
    CIFAR16_COMPONENTS,
    CIFAR16_DEFAULTS,
    CIFAR_CPU_COMPONENTS,
    CIFAR_CPU_DEFAULTS,
    CIFAR_PAPER_COMPONENTS,
    CIFAR_PAPER_DEFAULTS,
    LENET_COMPONENTS,
    LENET_DEFAULTS,
    SCENE_CPU_DEFAULTS,
    SEGMENTATION_CPU_COMPONENTS,
    SEGMENTATION_CPU_DEFAULTS,
    SEGMENTATION_PAPER_COMPONENTS,
    SEGMENTATION_PAPER_DEFAULTS,
)

Loader = Callable[[str | Path | None, bool, bool], LabeledImages]
"""(data_root, train, download) -> images and labels at the task's input size."""


@dataclass(frozen=True)
class TeacherRecipe:
    """Default supervised training recipe for a task's teacher."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str = "sgd"  # "sgd" (momentum 0.9, nesterov) or "adam"
    max_shift: int = 0  # random translation in pixels (data augmentation)
    hflip: bool = False  # random horizontal flips (natural images only)


@dataclass(frozen=True)
class TaskSpec:
    """Everything later code needs to know about a task."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    teacher_arch: str
    student_arch: str
    loader: Loader = field(repr=False)
    recipe: TeacherRecipe
    needs_data_root: bool  # False when the data ships with a package
    description: str
    kind: str = "classification"  # how model outputs are read (ssdkd_env.tasks.kinds.TASK_KINDS)
    cpu_variant: str | None = None  # the task that runs this data at CPU scale (ssdkd_env.tasks.scale)
    scale_note: str = ""  # what a run at this task's scale costs, for the notice of --scale auto
    # the engine settings this task runs with (dotted keys, e.g. {"distiller.lr": 0.05}), applied before a
    # method's preset; anything not named keeps the dataclass default (ssdkd_env.engine.config.make_config)
    engine_defaults: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)
    # the task's tuning of components by component name (e.g. {"meta-generator": {"g_steps": 5}}), applied to a
    # run that uses the component (the probe's inversion takes the meta-generator's)
    component_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, hash=False)

    def __post_init__(self) -> None:  # read-only views
        object.__setattr__(self, "engine_defaults", MappingProxyType(dict(self.engine_defaults)))
        tuning = {name: MappingProxyType(dict(options)) for name, options in self.component_defaults.items()}
        object.__setattr__(self, "component_defaults", MappingProxyType(tuning))

    def load(self, data_root: str | Path | None, train: bool, download: bool = False) -> LabeledImages:
        """Load the train (``train=True``) or test split into memory."""
        return self.loader(data_root, train, download)

    def __reduce__(self) -> tuple[Callable[[str], TaskSpec], tuple[str]]:
        """Pickle by name (loaders are closures): another process looks the task up in its registry."""
        return get_task, (self.name,)


TASKS: Registry[TaskSpec] = Registry("task")


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry (names are unique)."""
    return TASKS.add(spec.name, spec)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names give a one-line error listing the valid ones."""
    return TASKS.get(name)


def list_tasks() -> list[str]:
    """Names of all registered tasks."""
    return sorted(TASKS)


def _digits_loader(data_root: str | Path | None, train: bool, download: bool) -> LabeledImages:
    return load_digits_split(train)


def _torchvision_loader(task: str, size: int) -> Loader:
    def load(data_root: str | Path | None, train: bool, download: bool) -> LabeledImages:
        return load_torchvision_split(task, data_root, train, download, size)

    return load


register_task(
    TaskSpec(
        name="digits",
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(0.3055,),
        std=(0.3760,),
        teacher_arch="cnn",
        student_arch="cnn_half",
        loader=_digits_loader,
        recipe=TeacherRecipe(epochs=60, batch_size=64, lr=0.05, weight_decay=5e-4, max_shift=1),
        needs_data_root=False,
        description="scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)",
        # DeepInversion's pixel optimisation converges in far fewer steps on 8x8 images (docs/notebook/2026-12-01.md)
        engine_defaults={"rounds": 120, "kd_steps": 40, "action.synth_budget": 128},
        component_defaults={"pixel-inversion": {"iterations": 50, "lr": 0.1}},
    )
)
register_task(
    TaskSpec(
        name="mnist",
        num_classes=10,
        input_shape=(1, 32, 32),
        mean=(0.1307,),
        std=(0.3081,),
        teacher_arch="lenet5",
        student_arch="lenet5_half",
        loader=_torchvision_loader("mnist", 32),
        recipe=TeacherRecipe(epochs=20, batch_size=128, lr=0.05, weight_decay=5e-4, max_shift=2),
        needs_data_root=True,
        description="MNIST resized to 32x32 (torchvision layout)",
        engine_defaults=LENET_DEFAULTS,
        component_defaults=LENET_COMPONENTS,
    )
)
register_task(
    TaskSpec(
        name="fashion-mnist",
        num_classes=10,
        input_shape=(1, 32, 32),
        mean=(0.2860,),
        std=(0.3530,),
        teacher_arch="lenet5",
        student_arch="lenet5_half",
        loader=_torchvision_loader("fashion-mnist", 32),
        recipe=TeacherRecipe(epochs=30, batch_size=128, lr=0.05, weight_decay=5e-4, max_shift=2),
        needs_data_root=True,
        description="Fashion-MNIST resized to 32x32 (torchvision layout)",
        engine_defaults=LENET_DEFAULTS,
        component_defaults=LENET_COMPONENTS,
    )
)
_NATURAL_RECIPE = TeacherRecipe(epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4, max_shift=4, hflip=True)
register_task(
    TaskSpec(
        name="svhn",
        num_classes=10,
        input_shape=(3, 32, 32),
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        teacher_arch="wrn40_2",
        student_arch="wrn16_1",
        loader=_torchvision_loader("svhn", 32),
        recipe=TeacherRecipe(epochs=40, batch_size=128, lr=0.05, weight_decay=5e-4, max_shift=2),
        needs_data_root=True,
        description="Street View House Numbers, 32x32 RGB (torchvision .mat files)",
        engine_defaults={"rounds": 200, "kd_steps": 200, "buffer_size": 7300, "action.synth_budget": 256},
    )
)
CIFAR10 = register_task(
    TaskSpec(
        name="cifar10",
        num_classes=10,
        input_shape=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        teacher_arch="resnet34",
        student_arch="resnet18",
        loader=_torchvision_loader("cifar10", 32),
        recipe=_NATURAL_RECIPE,
        needs_data_root=True,
        description="CIFAR-10, 32x32 RGB (torchvision python batches)",
        engine_defaults=CIFAR_PAPER_DEFAULTS,
        component_defaults=CIFAR_PAPER_COMPONENTS,
        cpu_variant="cifar10-cpu",
        scale_note="more than a week on 2 CPU cores; train/benchmark.py projects it on this machine",
    )
)
register_task(  # the same data, normalisation and loader; a pair and schedule that fit 2 CPU cores
    dataclasses.replace(
        CIFAR10,
        name="cifar10-cpu",
        teacher_arch="wrn16_1",
        student_arch="wrn16_1",
        recipe=TeacherRecipe(epochs=25, batch_size=128, lr=0.1, weight_decay=5e-4, max_shift=4, hflip=True),
        description="CIFAR-10 at CPU scale: the same data with a pair and schedule that fit 2 CPU cores",
        engine_defaults=CIFAR_CPU_DEFAULTS,
        component_defaults=CIFAR_CPU_COMPONENTS,
        cpu_variant=None,
        scale_note="about 10 to 20 minutes a run on 2 CPU cores, after a teacher of 20 to 60 minutes",
    )
)
register_task(  # the same data and normalisation at 16x16, with the digits' small CNN pair: a fast agent suite
    dataclasses.replace(
        CIFAR10,
        name="cifar10-16",
        input_shape=(3, 16, 16),
        teacher_arch="cnn",
        student_arch="cnn_half",
        loader=_torchvision_loader("cifar10", 16),
        recipe=TeacherRecipe(epochs=30, batch_size=128, lr=0.05, weight_decay=5e-4, max_shift=2, hflip=True),
        description="CIFAR-10 resized to 16x16 with a small CNN pair: the CIFAR-like suite of the agent benchmarks",
        engine_defaults=CIFAR16_DEFAULTS,
        component_defaults=CIFAR16_COMPONENTS,
        cpu_variant=None,
        scale_note="a teacher of about 10 minutes and environment steps of under a second on 2 CPU cores",
    )
)
register_task(
    TaskSpec(
        name="cifar100",
        num_classes=100,
        input_shape=(3, 32, 32),
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        teacher_arch="resnet34",
        student_arch="resnet18",
        loader=_torchvision_loader("cifar100", 32),
        recipe=_NATURAL_RECIPE,
        needs_data_root=True,
        description="CIFAR-100, 32x32 RGB (torchvision python batches)",
        engine_defaults=CIFAR_PAPER_DEFAULTS,
        component_defaults=CIFAR_PAPER_COMPONENTS,
    )
)


# ----------------------------------------------------------------- segmentation (task kind "segmentation")
SHAPES_TRAIN, SHAPES_TEST, SHAPES_SIZE = 2000, 500, 32
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_DEEPLAB_RECIPE = TeacherRecipe(epochs=200, batch_size=16, lr=0.01, weight_decay=1e-4, max_shift=16, hflip=True)
# the U-Net teacher of a scene at CPU scale: 40 epochs of Adam
# (docs/notebook/2026-12-01.md, "CamVid at 240x180: teacher")
_UNET_SCENE_RECIPE = TeacherRecipe(
    epochs=40, batch_size=8, lr=3e-3, weight_decay=1e-4, optimizer="adam", max_shift=16, hflip=True
)


def _shapes_loader(data_root: str | Path | None, train: bool, download: bool) -> LabeledImages:
    from ssdkd_env.tasks.segmentation_data import make_shapes

    return make_shapes(SHAPES_TRAIN if train else SHAPES_TEST, SHAPES_SIZE, seed=0 if train else 1)


def _camvid_loader(data_root: str | Path | None, train: bool, download: bool) -> LabeledImages:
    from ssdkd_env.tasks.segmentation_data import load_camvid_split

    return load_camvid_split(data_root, train)


def _nyuv2_loader(height: int, width: int) -> Loader:
    def load(data_root: str | Path | None, train: bool, download: bool) -> LabeledImages:
        from ssdkd_env.tasks.segmentation_data import load_nyuv2_split

        return load_nyuv2_split(data_root, train, (height, width))

    return load


register_task(
    TaskSpec(
        name="shapes",
        num_classes=5,
        input_shape=(3, SHAPES_SIZE, SHAPES_SIZE),
        mean=(0.5, 0.5, 0.5),
        std=(0.29, 0.29, 0.29),
        teacher_arch="unet_s",
        student_arch="unet_xs",
        loader=_shapes_loader,
        recipe=TeacherRecipe(
            epochs=30, batch_size=64, lr=3e-3, weight_decay=1e-4, optimizer="adam", max_shift=2, hflip=True
        ),
        needs_data_root=False,
        description="procedural segmentation: discs, squares, triangles and rings on textured backgrounds, 32x32 "
        "(generated, no download; 5 classes with background)",
        kind="segmentation",
        # shapes' classes are set by geometry, not colour: replayed samples are recoloured (channel order, gain,
        # offset) and relabelled, so a generator settled on one palette still shows every colour
        # (docs/notebook/2026-12-02.md)
        component_defaults=SEGMENTATION_CPU_COMPONENTS,
        engine_defaults={
            **SEGMENTATION_CPU_DEFAULTS,
            "rounds": 60,
            "kd_steps": 30,
            "distiller.augment_color": 0.5,
            "buffer_size": 1000,
            "eval_every": 4,
            "action.synth_budget": 64,
            "distiller.batch_size": 64,
            "distiller.lr": 0.05,
        },
    )
)
CAMVID = register_task(
    TaskSpec(
        name="camvid",
        num_classes=11,
        input_shape=(3, 180, 240),
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
        teacher_arch="deeplabv3_resnet50",
        student_arch="deeplabv3_mobilenetv2",
        loader=_camvid_loader,
        recipe=_DEEPLAB_RECIPE,
        needs_data_root=True,
        description="CamVid road scenes at 240x180, 11 classes (SegNet layout: CamVid/{train,test}{,annot}/)",
        kind="segmentation",
        engine_defaults=SEGMENTATION_PAPER_DEFAULTS,
        component_defaults=SEGMENTATION_PAPER_COMPONENTS,
        cpu_variant="camvid-cpu",
        scale_note="DeepLabV3-ResNet50 -> DeepLabV3-MobileNetV2: days on 2 CPU cores",
    )
)
register_task(  # the same data, normalisation and loader; a U-Net pair and schedule that fit 2 CPU cores
    dataclasses.replace(
        CAMVID,
        name="camvid-cpu",
        teacher_arch="unet_s",
        student_arch="unet_xs",
        recipe=_UNET_SCENE_RECIPE,
        description="CamVid at CPU scale: the same data with a small U-Net pair that fits 2 CPU cores",
        engine_defaults={**SCENE_CPU_DEFAULTS, "distiller.augment_shift": 16},
        component_defaults={
            **SEGMENTATION_CPU_COMPONENTS,
            "meta-generator": {**SEGMENTATION_CPU_COMPONENTS["meta-generator"], "augment_shift": 16},
        },
        cpu_variant=None,
        scale_note="a teacher of about 35 minutes and students of about 46 minutes a run on 2 CPU cores",
    )
)
NYUV2 = register_task(
    TaskSpec(
        name="nyuv2",
        num_classes=13,
        input_shape=(3, 240, 320),
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
        teacher_arch="deeplabv3_resnet50",
        student_arch="deeplabv3_mobilenetv2",
        loader=_nyuv2_loader(240, 320),
        recipe=_DEEPLAB_RECIPE,
        needs_data_root=True,
        description="NYUv2 indoor scenes, 13 classes, resized to 320x240 (preprocessed layout: NYUv2/{image,seg13}/)",
        kind="segmentation",
        engine_defaults=SEGMENTATION_PAPER_DEFAULTS,
        component_defaults=SEGMENTATION_PAPER_COMPONENTS,
        cpu_variant="nyuv2-cpu",
        scale_note="DeepLabV3-ResNet50 -> DeepLabV3-MobileNetV2: days on 2 CPU cores",
    )
)
register_task(
    dataclasses.replace(
        NYUV2,
        name="nyuv2-cpu",
        input_shape=(3, 120, 160),
        teacher_arch="unet_s",
        student_arch="unet_xs",
        loader=_nyuv2_loader(120, 160),
        recipe=dataclasses.replace(_UNET_SCENE_RECIPE, epochs=60, max_shift=8),  # smaller images: smaller shifts
        description="NYUv2 at CPU scale: 160x120 and a small U-Net pair",
        engine_defaults=SCENE_CPU_DEFAULTS,
        component_defaults=SEGMENTATION_CPU_COMPONENTS,
        cpu_variant=None,
        scale_note="a teacher of about an hour on 2 CPU cores",
    )
)
