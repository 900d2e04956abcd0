"""Offline only: pydantic-ai may not reach a model provider from the tests."""

from __future__ import annotations

import pydantic_ai.models

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False
