"""Texts every embedder test feeds: ordinary prompts, odd strings any ``str`` may be, and the
shared llmrouter data (tests that need it skip or shrink when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(os.environ.get("RANKGATE_LLMROUTER_DATA",
                           Path(__file__).resolve().parents[3] / "shared/data/llmrouter-9models"))
TEXTS = ["What is the capital of France?", "Write a python function to reverse a list.",
         "Solve 3x + 5 = 20 for x.", "Résumez ce texte en deux phrases."]
ODD = ["", " ", "\x00", "a\x00b", "\ud800 lone surrogate \udfff", "😀" * 50, "\n\n\t",
       "שלום עולם", "x" * 200_000, "def f():\n    return 1\n" * 500]
