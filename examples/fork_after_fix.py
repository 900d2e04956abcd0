"""Fork a failed run after a fix: the steps that succeeded are not run again.

A signup charges a card, then sends a welcome email; the email step has a bug. After the
fix, the run is forked from the failing step: the card is not charged twice.
Run it: python examples/fork_after_fix.py (uses $DURABLY_WORLD, else the embedded default).
"""

from __future__ import annotations

import asyncio

from durably import FatalError, WorkflowRunFailedError, Workflows, start

wf = Workflows()
charged: list[str] = []
email_is_broken = True  # the bug


@wf.step
async def charge_card(user: str) -> str:
    charged.append(user)
    return f"ch_{user}"


@wf.step
async def send_welcome_email(user: str, charge: str) -> str:
    if email_is_broken:
        raise FatalError("template 'welcome' not found")
    return f"sent to {user} (receipt {charge})"


@wf.workflow
async def signup(user: str) -> str:
    charge = await charge_card(user)
    return await send_welcome_email(user, charge)


async def main() -> None:
    global email_is_broken
    async with wf:
        run = await start(signup, "ada")
        try:
            await run.return_value(timeout=30)
        except WorkflowRunFailedError as e:
            print(f"run {run.run_id} failed: {e.cause}")
        failing = next(s for s in await run.steps() if s.status == "failed")

        email_is_broken = False  # the fix is deployed
        fork = await run.fork(from_step=failing.call)
        print(f"fork {fork.run_id} from step {failing.call}: {await fork.return_value(timeout=30)}")
        assert await fork.return_value() == "sent to ada (receipt ch_ada)"
        assert charged == ["ada"], "the card was charged once"
        print(f"card charged {len(charged)} time(s)")


if __name__ == "__main__":
    asyncio.run(main())
