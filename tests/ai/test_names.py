"""Step names are persisted: a run recorded by one version replays under the next only if
every operation keeps its name. This pins the whole set (change it only with a migration
of in-flight runs in mind)."""

from __future__ import annotations

from pydantic_ai.durable_exec import (
    CapabilityOperationId,
    EventStreamHandlerId,
    ModelCancelSuspendedResponseId,
    ModelCompactMessagesId,
    ModelRequestId,
    ToolsetCallToolId,
    ToolsetGetInstructionsId,
    ToolsetGetToolsId,
    ToolsetValidateToolArgumentsId,
)

from durably.ai._names import StepNamer


def test_the_step_names_of_every_operation() -> None:
    n = StepNamer("support")

    def name(op: object, label: str | None = None) -> str:
        return n.invocation_name(op, label=label).operation_name  # type: ignore[arg-type]

    assert name(ModelRequestId(None, streaming=False, model_name="gpt-5")) == "support.model"
    assert name(ModelRequestId("fast", streaming=True, model_name="x")) == "support.model"
    assert name(ModelCancelSuspendedResponseId(None, model_name="x")) == "support.model.cancel"
    assert name(ModelCompactMessagesId(None, model_name="x")) == "support.model.compact"
    assert name(EventStreamHandlerId()) == "support.events"
    call = ToolsetCallToolId("function", toolset_id="<agent>")
    assert name(call, "lookup_order") == "support.tool.lookup_order"
    assert name(ToolsetCallToolId("dynamic", toolset_id="d"), "t") == "support.tool.t"
    assert name(ToolsetCallToolId("mcp", toolset_id="crm"), "find") == "support.mcp.crm.tool.find"
    validate = ToolsetValidateToolArgumentsId("function", toolset_id="<agent>")
    assert name(validate, "lookup_order") == "support.tool.lookup_order.validate"
    assert name(ToolsetGetToolsId("mcp", toolset_id="crm")) == "support.toolset.crm.get_tools"
    assert (
        name(ToolsetGetInstructionsId(toolset_id="crm")) == "support.toolset.crm.get_instructions"
    )
    cap = CapabilityOperationId("memory", operation="recall")
    assert name(cap) == "support.capability.memory.recall"
