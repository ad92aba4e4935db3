"""The executor of every job, chosen by configuration when the code location loads (no code change).

`SEG_EXECUTOR` names it: `in_process` (one process runs every step: today's default), `multiprocess` (a spawned
process per step, at most `max_concurrent` at once, by default the machine's cores), `celery` (each step a task
for dagster-celery workers behind a broker; extra `[celery]`) or `k8s` (each step a Kubernetes Job; extra
`[k8s]`). `SEG_EXECUTOR_CONFIG` is a YAML file whose `execution: config:` block is the executor's config: the
same file `dagster-celery worker start -y` reads, so the run and its workers agree on the broker. The optional
packages are imported only when named, and the block is checked against the executor's own config schema here,
so a bad file fails the load in one line instead of every run.
"""

import importlib
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._config import validate_config

from seg_pipeline.settings import PipelineSettings, SettingsError

#: SEG_EXECUTOR -> (module, executor attribute, pip extra) of the executors that live outside dagster itself
_OPTIONAL = {
    "celery": ("dagster_celery", "celery_executor", "celery"),
    "k8s": ("dagster_k8s", "k8s_job_executor", "k8s"),
}
# dagster-celery 0.29 registers its step task twice on every run's Celery app; celery warns on stderr each time
warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")


def executor_definition(kind: str) -> dg.ExecutorDefinition:
    """Dagster's executor for a value of SEG_EXECUTOR, importing its package only now."""
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    module, attribute, extra = _OPTIONAL[kind]
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as error:
        raise SettingsError(
            f"SEG_EXECUTOR: {kind} needs {module.replace('_', '-')}, which is not installed ({error}); "
            f"install the extra: pip install 'seg_pipeline[{extra}]'"
        ) from None


def executor_config(kind: str, path: str, definition: dg.ExecutorDefinition | None = None) -> dict[str, Any]:
    """The `execution: config:` block of the YAML file at `path`, valid for executor `kind` (its `definition`, if
    already at hand); {} when no file."""
    if not path:
        return {}
    where = f"SEG_EXECUTOR_CONFIG: {path}"
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"{where}: not readable YAML ({' '.join(str(error).split())})") from None
    execution = document.get("execution") if isinstance(document, dict) else None
    config = execution.get("config") if isinstance(execution, dict) else None
    if not isinstance(config, dict):
        raise SettingsError(f"{where}: expected a mapping under `execution: config:` (the executor's config)")
    definition = definition or executor_definition(kind)
    result = validate_config(definition.config_schema.config_type, config)
    if not result.success:
        first = " ".join(result.errors[0].message.split()).split(" Expected: ")[0]
        raise SettingsError(f"{where}: not a valid config of the {kind} executor: {first}")
    return config


def build_executor(settings: PipelineSettings) -> dg.ExecutorDefinition:
    """The executor of every job of the code location, configured by SEG_EXECUTOR_CONFIG when it is set."""
    definition = executor_definition(settings.executor)
    config = executor_config(settings.executor, settings.executor_config, definition)
    return definition.configured(config) if config else definition
