"""User-level task specifications and how the named tasks map onto task heads."""

from __future__ import annotations

from dataclasses import dataclass

from scdiva.config import CLASSIFIER_REPRESENTATIONS
from scdiva.module.heads import TASK_REGISTRY

#: tasks that need no extra information besides the data
BUILTIN_TASKS = ("masked_expression", "integration", "annotation")


@dataclass(frozen=True)
class TaskSpec:
    """A training task.

    ``name`` is the head's name (``predict(x, task=name)``); ``kind`` a registered head kind
    (``classifier``, ``integration``, ``masked_expression``); ``obs_key`` the obs column with the
    labels of a classifier; ``weight`` multiplies the task's loss; ``hidden_layers`` the depth of a
    classifier's MLP (0: linear on the latent; None: the head's default) and ``representation``
    what it reads (``"latent"`` or ``"cell"``; None: the head's default), see
    scdiva.module.heads.ClassifierHead.
    """

    name: str
    kind: str = "classifier"
    obs_key: str | None = None
    weight: float = 1.0
    hidden_layers: int | None = None
    representation: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_REGISTRY:
            raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; registered: {sorted(TASK_REGISTRY)}")
        if self.kind == "classifier" and not self.obs_key:
            raise ValueError(f"classifier task {self.name!r} needs obs_key (the obs column with its labels)")
        for option in ("hidden_layers", "representation"):
            if getattr(self, option) is not None and self.kind != "classifier":
                raise ValueError(f"task {self.name!r}: {option} applies to classifier tasks only")
        if self.representation is not None and self.representation not in CLASSIFIER_REPRESENTATIONS:
            raise ValueError(f"task {self.name!r}: representation must be one of {list(CLASSIFIER_REPRESENTATIONS)}, "
                             f"got {self.representation!r}")
        if self.kind in ("integration", "masked_expression") and self.name != self.kind:
            raise ValueError(f"task kind {self.kind!r} must be named {self.kind!r}")


def resolve_tasks(tasks, label_key: str | None) -> list[TaskSpec]:
    """Turn ``["masked_expression", "annotation", TaskSpec(...)]`` into task specs."""
    if isinstance(tasks, str | TaskSpec):
        tasks = [tasks]
    specs: list[TaskSpec] = []
    for task in tasks:
        if isinstance(task, TaskSpec):
            specs.append(task)
        elif task == "annotation":
            if label_key is None:
                raise ValueError("the 'annotation' task needs label_key= (the obs column with cell-type labels)")
            specs.append(TaskSpec("annotation", kind="classifier", obs_key=label_key))
        elif task in ("masked_expression", "integration"):
            specs.append(TaskSpec(task, kind=task))
        else:
            raise ValueError(f"unknown task {task!r}; use one of {list(BUILTIN_TASKS)} or a "
                             "TaskSpec(name, kind='classifier', obs_key=...)")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    if not specs:
        raise ValueError("tasks is empty; give at least one task")
    return specs
