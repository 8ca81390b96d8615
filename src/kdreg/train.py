"""Teacher and student training, for one (noise level, seed) or a group of them: the public entry points.

The work is split by job: :mod:`kdreg.trainer` (the loop, settings, resumable states), :mod:`kdreg.inputs` (data
to tensors, architecture configs), :mod:`kdreg.teacher` and :mod:`kdreg.student`.
"""
from kdreg.inputs import Prepared, model_config, model_inputs, prepare  # noqa: F401
from kdreg.metrics import task_metrics  # noqa: F401
from kdreg.student import StudentResult, train_method_students, train_student, train_students  # noqa: F401
from kdreg.teacher import TeacherResult, train_teacher, train_teachers  # noqa: F401
from kdreg.trainer import Inputs, Resume, ResumeDir, TrainSettings, fit, predict  # noqa: F401
