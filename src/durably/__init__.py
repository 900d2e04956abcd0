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
from .errors import (
    ConfigurationError,
    DecryptionError,
    DurablyError,
    FatalError,
    HookConflictError,
    HookNotFoundError,
    NonDeterminismError,
    PayloadTooLargeError,
    RetryableError,
    RunCancelledError,
    RunNotFoundError,
    SandboxError,
    SerializationError,
    StepError,
    StepNotRegisteredError,
    StepTimeoutError,
    WorkflowNotRegisteredError,
    WorkflowRunFailedError,
    WorldError,
)
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
    time_ns,
    uuid4,
)
from .runtime.limits import Limits

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DecryptionError",
    "DurablyError",
    "FatalError",
    "HookConflictError",
    "HookNotFoundError",
    "Limits",
    "NonDeterminismError",
    "PayloadTooLargeError",
    "RetryableError",
    "Run",
    "RunCancelledError",
    "RunNotFoundError",
    "SandboxError",
    "SerializationError",
    "Step",
    "StepError",
    "StepMetadata",
    "StepNotRegisteredError",
    "StepTimeoutError",
    "Workflow",
    "WorkflowMetadata",
    "WorkflowNotRegisteredError",
    "WorkflowRunFailedError",
    "Workflows",
    "WorldError",
    "__version__",
    "get_run",
    "get_step_metadata",
    "get_workflow_metadata",
    "in_step",
    "in_workflow",
    "now",
    "random",
    "run_step",
    "sleep",
    "start",
    "time_ns",
    "uuid4",
]
