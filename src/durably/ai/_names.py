"""The step names an agent's durable operations get: persisted data, keep them stable.

``{agent}.model`` for every model request (streamed or not, whatever the model: a replay
that routes a request to another model must still find its recorded response), and
``{agent}.tool.{tool_name}`` for every tool call, as the public contract names them; the
rarer operations get names in the same family.
"""

from __future__ import annotations

from pydantic_ai.durable_exec import (
    CapabilityOperationId,
    DurableOperationId,
    EventStreamHandlerId,
    ModelCancelSuspendedResponseId,
    ModelCompactMessagesId,
    ModelRequestId,
    ToolsetCallToolId,
    ToolsetGetInstructionsId,
    ToolsetGetToolsId,
    ToolsetValidateToolArgumentsId,
)
from pydantic_ai.durable_exec._operation_names import DurableInvocationName

__all__ = ["StepNamer"]


class StepNamer:
    """Maps pydantic-ai's typed operation ids to durably step names (a
    ``DurableOperationNamer``)."""

    def __init__(self, agent_name: str) -> None:
        self.agent = agent_name

    def operation_name(self, operation_id: DurableOperationId) -> str:
        """The step name of an operation, before its per-call label (a tool's name)."""
        a = self.agent
        match operation_id:
            case ModelRequestId():
                return f"{a}.model"
            case ModelCancelSuspendedResponseId():
                return f"{a}.model.cancel"
            case ModelCompactMessagesId():
                return f"{a}.model.compact"
            case EventStreamHandlerId():
                return f"{a}.events"
            case ToolsetCallToolId(toolset_kind="mcp", toolset_id=toolset_id):
                return f"{a}.mcp.{toolset_id}.tool"
            case ToolsetCallToolId():
                return f"{a}.tool"
            case ToolsetValidateToolArgumentsId():
                return f"{a}.tool"
            case ToolsetGetToolsId(toolset_id=toolset_id):
                return f"{a}.toolset.{toolset_id}.get_tools"
            case ToolsetGetInstructionsId(toolset_id=toolset_id):
                return f"{a}.toolset.{toolset_id}.get_instructions"
            case CapabilityOperationId(capability_id=capability_id, operation=operation):
                return f"{a}.capability.{capability_id}.{operation}"
        # pydantic-ai's union grows in minor releases: a new kind gets a generic name.
        return f"{a}.{type(operation_id).__name__}"  # pragma: no cover

    def invocation_name(
        self, operation_id: DurableOperationId, *, label: str | None
    ) -> DurableInvocationName:
        """The step name of one call: a tool call carries its tool's name."""
        name = self.operation_name(operation_id)
        if isinstance(operation_id, ToolsetCallToolId) and label is not None:
            name = f"{name}.{label}"
        elif isinstance(operation_id, ToolsetValidateToolArgumentsId) and label is not None:
            name = f"{name}.{label}.validate"
        return DurableInvocationName(name)
