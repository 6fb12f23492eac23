"""Which teacher class stands for each class of the student's data.

A teacher trained on more classes (COCO's 80, or a user's own multi-class model) can teach a student whose data labels
only some of them, in another order, or under other names:

* every data class whose name is also a teacher class is mapped by name, in any order;
* `class_map={automobile: car}` maps data names to teacher names explicitly (renames, partial overlap);
* a data class with no teacher counterpart gets no logit distillation (its scores learn from the labels alone).

The logit terms then read the teacher's scores of the mapped classes only (`index`), so teacher classes that the
data does not label are left out of NCKD's non-target distribution. Background: on anchors the student's assigner
calls background, BGKD pulls every mapped student score towards the teacher's score for that class. An object of a
class the data does not label is background for the student (its labels say so), but a teacher may still give it a
high score for a similar mapped class (a hexagon scored as a circle). With `unlabeled_as_background=True` (default)
each mapped probability q becomes q * (1 - r), r the teacher's highest probability among the unlabeled classes, so
where the teacher recognises such an object every student class is taught background (`Distiller.map_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .config import KDConfigError, summarize_names


@dataclass(frozen=True)
class ClassMap:
    """`index[k]` = teacher class of student class k (-1: none); `identity` when no remapping is needed."""

    index: tuple
    student_names: tuple
    teacher_names: tuple

    @property
    def identity(self) -> bool:
        return list(self.index) == list(range(len(self.teacher_names)))

    @property
    def mapped(self) -> int:
        return sum(i >= 0 for i in self.index)

    def describe(self) -> str:
        """'3/80 teacher classes mapped by name: person->0, car->2, dog->1' (student index after the arrow)."""
        pairs = [f"{self.teacher_names[t]}->{k}" for k, t in enumerate(self.index) if t >= 0]
        unmapped = [self.student_names[k] for k, t in enumerate(self.index) if t < 0]
        extra = f"; no teacher class for {', '.join(unmapped)} (labels only)" if unmapped else ""
        return f"{self.mapped}/{len(self.teacher_names)} teacher classes mapped: {', '.join(pairs)}{extra}"


def _names(names) -> list[str]:
    return [str(n) for n in (names.values() if isinstance(names, dict) else names)]


def parse_class_map(value) -> dict:
    """`class_map` as given: a dict, or a YAML/JSON mapping string from the CLI ('{automobile: car}')."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            value = None
    if not isinstance(value, dict):
        raise KDConfigError(f"class_map={value!r} must be a mapping of data names to teacher names, e.g. "
                            f"class_map=\"{{automobile: car}}\"")
    return {str(k): str(v) for k, v in value.items()}


def resolve_class_map(teacher_names, data_names, class_map=None) -> ClassMap | None:
    """Map each data class to a teacher class by name (after `class_map` renames); None when no class is shared.

    Raises:
        KDConfigError: when `class_map` names a data or teacher class that does not exist.
    """
    t_names, d_names = _names(teacher_names), _names(data_names)
    renames = parse_class_map(class_map)
    for d, t in renames.items():
        if d not in d_names:
            raise KDConfigError(f"class_map: '{d}' is not a class of the data ({summarize_names(d_names)})")
        if t not in t_names:
            raise KDConfigError(f"class_map: '{t}' is not a teacher class ({summarize_names(t_names)})")
    index = tuple(t_names.index(renames.get(d, d)) if renames.get(d, d) in t_names else -1 for d in d_names)
    if not any(i >= 0 for i in index):
        return None
    return ClassMap(index, tuple(d_names), tuple(t_names))
