"""Classification tasks: name, shape, normalisation, default models and real-data loaders."""

from ssdkd_env.tasks.data import LabeledImages
from ssdkd_env.tasks.registry import TASKS, TaskSpec, TeacherRecipe, get_task, list_tasks, register_task
from ssdkd_env.tasks.scale import SCALES, task_at_scale

__all__ = [
    "SCALES",
    "TASKS",
    "LabeledImages",
    "TaskSpec",
    "TeacherRecipe",
    "get_task",
    "list_tasks",
    "register_task",
    "task_at_scale",
]
