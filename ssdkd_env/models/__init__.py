"""Model registry (classifiers by name) and the data-free generator.

Importing this package registers every architecture family.
"""

from ssdkd_env.models import cnn, lenet, mobilenetv2, resnet, segmentation, vgg, wrn  # noqa: F401  (registration)
from ssdkd_env.models.base import Classifier
from ssdkd_env.models.generator import Generator
from ssdkd_env.models.registry import (
    MODELS,
    ModelEntry,
    build_model,
    count_parameters,
    get_model_entry,
    is_compatible,
    list_models,
    register_model,
)
from ssdkd_env.models.slicing import check_teacher_init_pair, init_from_teacher

__all__ = [
    "MODELS",
    "Classifier",
    "Generator",
    "ModelEntry",
    "build_model",
    "check_teacher_init_pair",
    "count_parameters",
    "get_model_entry",
    "init_from_teacher",
    "is_compatible",
    "list_models",
    "register_model",
]
