"""durably: durable execution for Python, where your code is the orchestrator.

A workflow is an ``async def`` marked ``@wf.workflow``; a step is a function marked
``@wf.step``. Every step call is recorded in an append-only event log and replayed, so a
run survives crashes, restarts and deploys, and sleeps for months without holding compute.

Quick start::

    from durably import Workflows, start

    wf = Workflows()

    @wf.step
    async def greet(name: str) -> str:
        return f"hello {name}"

    @wf.workflow
    async def hello(name: str) -> str:
        return await greet(name)

    run = await start(hello, "world")
    print(await run.return_value())
"""

from .api import get_run, run_step, sleep, start
from .attributes import remove_attributes, set_attributes
from .errors import (
    ConfigurationError,
    DecryptionError,
    DurablyError,
    DurablyWarning,
    FatalError,
    ForkError,
    HookConflictError,
    HookNotFoundError,
    KeyFileMissingError,
    MissingExtraError,
    NonDeterminismError,
    PayloadTooLargeError,
    RetryableError,
    RunCancelledError,
    RunNotFoundError,
    SandboxError,
    SerializationError,
    StepAbandonedError,
    StepError,
    StepNotRegisteredError,
    StepTimeoutError,
    WorkflowNotRegisteredError,
    WorkflowRunFailedError,
    WorldError,
    WorldFullError,
    WorldUnavailableError,
)
from .hooks import BaseHook, HookWait, get_hook_by_token, resume_hook
from .locks import Lock, lock
from .registry import Step, Workflow, Workflows
from .run import Run
from .runtime.context import (
    StepMetadata,
    WorkflowMetadata,
    get_step_metadata,
    get_workflow_metadata,
    in_step,
    in_workflow,
    now,
    random,
    step_cancelled,
    time_ns,
    uuid4,
)
from .runtime.limits import Limits
from .streams import Writable, get_writable
from .waiting import Waiting
from .worlds.base import HookRecord, StreamInfo

__version__ = "0.1.0"

__all__ = [
    "BaseHook",
    "ConfigurationError",
    "DecryptionError",
    "DurablyError",
    "DurablyWarning",
    "FatalError",
    "ForkError",
    "HookConflictError",
    "HookNotFoundError",
    "HookRecord",
    "HookWait",
    "KeyFileMissingError",
    "Limits",
    "Lock",
    "MissingExtraError",
    "NonDeterminismError",
    "PayloadTooLargeError",
    "RetryableError",
    "Run",
    "RunCancelledError",
    "RunNotFoundError",
    "SandboxError",
    "SerializationError",
    "Step",
    "StepAbandonedError",
    "StepError",
    "StepMetadata",
    "StepNotRegisteredError",
    "StepTimeoutError",
    "StreamInfo",
    "Waiting",
    "Workflow",
    "WorkflowMetadata",
    "WorkflowNotRegisteredError",
    "WorkflowRunFailedError",
    "Workflows",
    "WorldError",
    "WorldFullError",
    "WorldUnavailableError",
    "Writable",
    "__version__",
    "get_hook_by_token",
    "get_run",
    "get_step_metadata",
    "get_workflow_metadata",
    "get_writable",
    "in_step",
    "in_workflow",
    "lock",
    "now",
    "random",
    "remove_attributes",
    "resume_hook",
    "run_step",
    "set_attributes",
    "sleep",
    "start",
    "step_cancelled",
    "time_ns",
    "uuid4",
]
